# Evaluates flake.nix's outputs against stub inputs (nix/stubs/nixpkgs.nix and
# a stub rust-overlay) and checks their shape, and that flake.lock agrees with
# flake.nix's inputs. Needs no nixpkgs and no network:
#
#   nix-instantiate --eval --strict nix/flake-tests.nix      # `true` or throws
#
# What it cannot check: that nixpkgs really has these attributes and builders
# with these signatures. That is what `nix flake check` does where nixpkgs is
# reachable.
let
  inherit (builtins) all attrNames elem fromJSON head match readFile toJSON;

  plib = import ./lib.nix;
  flake = import ../flake.nix;

  rustOverlay = {
    overlays.default = final: prev: {
      rust-bin.stable.${plib.rustToolchainVersion}.default.override = args: {
        type = "derivation";
        name = "rust-${plib.rustToolchainVersion}";
        outPath = "/nix/store/00000000000000000000000000000000-rust";
        inherit (args) extensions;
      };
    };
  };

  # `import nixpkgs` coerces the input through outPath, as with a real input.
  stubNixpkgs = rev: { outPath = toString ./stubs/nixpkgs.nix; } // (if rev == null then { } else { inherit rev; });

  outputsWithSelf = self: rev: flake.outputs { inherit self; nixpkgs = stubNixpkgs rev; rust-overlay = rustOverlay; };
  outputsWith = outputsWithSelf { rev = "fedcba9876543210fedcba9876543210fedcba98"; };
  out = outputsWith "0123456789abcdef0123456789abcdef01234567";
  outDirty = outputsWith null;
  # An uncommitted perflab tree: no self.rev; newer Nix gives self.dirtyRev.
  outSelfDirty = outputsWithSelf { dirtyRev = "fedcba9876543210fedcba9876543210fedcba98-dirty"; } null;
  outSelfUnknown = outputsWithSelf { } null;

  sys = "x86_64-linux";
  pk = out.packages.${sys};
  wrappedArgs = pk.perflab-wrapped.stubArgs;
  perflabArgs = pk.perflab.stubArgs;
  shells = out.devShells.${sys};
  checks = out.checks.${sys};
  worker = pk.image-worker.stubArgs;

  contains = needle: hay: match ".*${needle}.*" hay != null;
  names = drvs: map (d: d.name) drvs;

  lock = fromJSON (readFile ../flake.lock);

  tests = [
    { name = "description"; got = flake.description != ""; want = true; }
    { name = "systems"; got = attrNames out.packages; want = [ "aarch64-linux" "x86_64-linux" ]; }
    { name = "all output kinds for both systems";
      got = map (k: attrNames out.${k}) [ "packages" "apps" "devShells" "checks" ];
      want = [ [ "aarch64-linux" "x86_64-linux" ] [ "aarch64-linux" "x86_64-linux" ]
               [ "aarch64-linux" "x86_64-linux" ] [ "aarch64-linux" "x86_64-linux" ] ]; }
    { name = "packages";
      got = attrNames pk;
      want = [ "default" "image-gateway-haproxy" "image-gateway-nginx" "image-lab" "image-worker" "perflab" "perflab-wrapped" ]; }
    { name = "default is perflab-wrapped"; got = pk.default.name; want = pk.perflab-wrapped.name; }
    { name = "no package named perf (Linux perf is a tool on its PATH)"; got = pk ? perf; want = false; }
    { name = "aarch64 package is built for aarch64"; got = out.packages.aarch64-linux.perflab.system; want = "aarch64-linux"; }

    # perflab's own revision is compiled in (src/fingerprint.rs, PERFLAB_BUILD_COMMIT)
    { name = "self.rev is built in"; got = perflabArgs.PERFLAB_BUILD_COMMIT; want = "fedcba9876543210fedcba9876543210fedcba98"; }
    { name = "self.dirtyRev is built in";
      got = outSelfDirty.packages.${sys}.perflab.stubArgs.PERFLAB_BUILD_COMMIT;
      want = "fedcba9876543210fedcba9876543210fedcba98-dirty"; }
    { name = "no revision: dirty"; got = outSelfUnknown.packages.${sys}.perflab.stubArgs.PERFLAB_BUILD_COMMIT; want = "dirty"; }
    # suites and terraform modules installed where src/install.rs looks
    { name = "suites and modules in share/perflab";
      got = contains "cp -r suites terraform [$]out/share/perflab/" perflabArgs.postInstall; want = true; }

    # perflab
    { name = "perflab: no checks in the package"; got = perflabArgs.doCheck; want = false; }
    { name = "perflab: Cargo.lock pins the crates"; got = builtins.pathExists perflabArgs.cargoLock.lockFile; want = true; }
    { name = "perflab: version from Cargo.toml"; got = perflabArgs.version; want = "0.1.0"; }
    { name = "perflab: rust 1.95 toolchain with clippy/rustfmt";
      got = { inherit (perflabArgs.stubToolchain) name extensions; };
      want = { name = "rust-1.95.0"; extensions = [ "clippy" "rustfmt" "rust-src" ]; }; }
    { name = "perflab: source filter wired with the right root";
      got = perflabArgs.src.verdicts;
      want = { src = true; cargoLock = true; fixture = true; target = false; flake = false; }; }
    { name = "perflab: zlib + pkg-config for vendored libgit2";
      got = [ (names perflabArgs.buildInputs) (names perflabArgs.nativeBuildInputs) ];
      want = [ [ "zlib" ] [ "pkg-config" ] ]; }

    # perflab-wrapped
    { name = "perflab-wrapped wraps perflab"; got = names wrappedArgs.paths; want = [ pk.perflab.name ]; }
    { name = "perflab-wrapped sets the nixpkgs rev";
      got = contains "--set PERFLAB_NIXPKGS_REV '0123456789abcdef0123456789abcdef01234567'" wrappedArgs.postBuild; want = true; }
    { name = "perflab-wrapped says toolchain nix"; got = contains "--set PERFLAB_TOOLCHAIN 'nix'" wrappedArgs.postBuild; want = true; }
    { name = "perflab-wrapped without a rev says dirty";
      got = contains "--set PERFLAB_NIXPKGS_REV 'dirty'" outDirty.packages.${sys}.perflab-wrapped.stubArgs.postBuild; want = true; }
    { name = "perflab-wrapped PATH has every tool and the terraform shim";
      got = all (t: contains "-${t}/bin" wrappedArgs.postBuild)
        [ "wrk" "nginx" "haproxy" "perf" "inferno" "postgresql" "openssh" "opentofu" "curl"
          "util-linux" "iproute2" "coreutils" "procps" "git" "run-perflab-terraform-shim" ];
      want = true; }
    { name = "perflab-wrapped checks every expected binary"; got = all (b: contains "'${b}'" wrappedArgs.postBuild) plib.expectedBins; want = true; }

    # apps
    { name = "apps"; got = attrNames out.apps.${sys}; want = [ "default" "perf" ]; }
    { name = "apps.perf runs the wrapped perflab";
      got = { inherit (out.apps.${sys}.perf) type program; };
      want = { type = "app"; program = "${pk.perflab-wrapped}/bin/perflab"; }; }
    { name = "apps.default = apps.perf"; got = out.apps.${sys}.default.program; want = out.apps.${sys}.perf.program; }

    # dev shells
    { name = "dev shells"; got = attrNames shells; want = [ "default" "docker" "terraform" ]; }
    { name = "default shell: toolchain, wrk, nginx, perf; no tofu";
      got = let n = names shells.default.stubArgs.nativeBuildInputs; in
        [ (elem "rust-1.95.0" n) (elem "wrk" n) (elem "nginx" n) (elem "perf" n) (elem "opentofu" n) ];
      want = [ true true true true false ]; }
    { name = "docker shell adds the docker engine (dockerd for scripts/start-dockerd.sh)";
      got = elem "docker" (names shells.docker.stubArgs.nativeBuildInputs); want = true; }
    { name = "terraform shell adds tofu, ssh and `terraform`";
      got = all (n: elem n (names shells.terraform.stubArgs.nativeBuildInputs))
        [ "opentofu" "openssh" "run-perflab-terraform-shim" ];
      want = true; }

    # checks
    { name = "checks"; got = attrNames checks; want = [ "build" "clippy" "fmt" "nix-lib" "unit-tests" "wrapper" ]; }
    { name = "clippy denies warnings on all targets";
      got = contains "cargo clippy --all-targets .*-- -D warnings" checks.clippy.stubArgs.buildPhase; want = true; }
    { name = "fmt"; got = contains "cargo fmt --all --check" checks.fmt.stubArgs.buildPhase; want = true; }
    { name = "unit tests only"; got = contains "cargo test --lib " checks.unit-tests.stubArgs.buildPhase; want = true; }
    { name = "nix-lib check evaluates nix/tests.nix"; got = checks.nix-lib.name; want = "run-perflab-nix-lib-tests"; }
    { name = "cargo hooks off in checks";
      got = [ checks.clippy.stubArgs.dontCargoBuild checks.clippy.stubArgs.dontCargoInstall ]; want = [ true true ]; }

    # images
    { name = "worker image name and tag"; got = { inherit (worker) name tag; }; want = { name = "perflab-worker"; tag = "perflab"; }; }
    { name = "worker image runs sleep infinity under tini";
      got = [ worker.config.Cmd (match ".*/bin/tini" (head worker.config.Entrypoint) != null) ];
      want = [ [ "sleep" "infinity" ] true ]; }
    { name = "worker image contents";
      got = all (n: elem n (names worker.contents)) [ "nginx" "wrk" "coreutils" "util-linux" "curl" "tini" "bin-sh" "text-passwd" "text-group" ];
      want = true; }
    { name = "haproxy image has haproxy, not nginx";
      got = let n = names pk.image-gateway-haproxy.stubArgs.contents; in [ (elem "haproxy" n) (elem "nginx" n) ];
      want = [ true false ]; }
    { name = "the lab image has every role's programs, tar and getconf";
      got = all (n: elem n (names pk.image-lab.stubArgs.contents))
        [ "nginx" "wrk" "haproxy" "postgresql" "curl" "util-linux" "coreutils" "procps" "iproute2" "gnutar" "glibc" "tini" "bin-sh" ];
      want = true; }
    { name = "images make tmp world-writable"; got = contains "chmod 1777 'tmp'" worker.extraCommands; want = true; }

    # flake.lock agrees with flake.nix
    { name = "lock version"; got = lock.version; want = 7; }
    { name = "lock root inputs = flake inputs"; got = attrNames lock.nodes.root.inputs; want = attrNames flake.inputs; }
    { name = "lock pins the branch flake.nix names";
      got = "github:${lock.nodes.nixpkgs.original.owner}/${lock.nodes.nixpkgs.original.repo}/${lock.nodes.nixpkgs.original.ref}";
      want = flake.inputs.nixpkgs.url; }
    { name = "nixpkgs pin is a github rev with a narHash";
      got = let l = lock.nodes.nixpkgs.locked; in
        [ l.type (match "[0-9a-f]{40}" l.rev != null) (match "sha256-.{43}=" l.narHash != null) (l.lastModified > 0) ];
      want = [ "github" true true true ]; }
    { name = "rust-overlay follows nixpkgs";
      got = [ lock.nodes.rust-overlay.inputs.nixpkgs flake.inputs.rust-overlay.inputs.nixpkgs.follows ];
      want = [ [ "nixpkgs" ] "nixpkgs" ]; }
    { name = "rust-overlay pin has a narHash";
      got = match "sha256-.{43}=" lock.nodes.rust-overlay.locked.narHash != null; want = true; }
  ];

  check = t:
    if t.got == t.want then true
    else throw "nix/flake-tests.nix: ${t.name}: got ${toJSON t.got}, want ${toJSON t.want}";
in
all check tests
