# Tests for nix/lib.nix, runnable without nixpkgs:
#
#   nix-instantiate --eval --strict nix/tests.nix      # prints `true` or throws
#
# Each test is { name; got; want; }; a failure throws with the test's name and
# both values. Only builtins are used; stubs stand in for nixpkgs.
let
  lib = import ./lib.nix;

  inherit (builtins) all any elem filter length map toJSON;

  check = t:
    if t.got == t.want then true
    else throw "nix/tests.nix: ${t.name}: got ${toJSON t.got}, want ${toJSON t.want}";

  # tryEval only forces weak head normal form: deepSeq to reach list elements.
  throws = expr: !(builtins.tryEval (builtins.deepSeq expr expr)).success;

  root = "/nix/store/00000000000000000000000000000000-source";
  keep = path: type: lib.sourceFilter root "${root}/${path}" type;

  # A stand-in for nixpkgs: every tool is a string naming itself.
  stubPkgs = {
    wrk = "wrk"; nginx = "nginx"; haproxy = "haproxy";
    linuxPackages = { perf = "perf"; };
    inferno = "inferno"; postgresql = "postgresql"; openssh = "openssh";
    opentofu = "opentofu"; curl = "curl"; util-linux = "util-linux";
    iproute2 = "iproute2"; coreutils = "coreutils"; procps = "procps"; git = "git";
    gnutar = "gnutar"; glibc = "glibc";
  };

  cargo = builtins.fromTOML (builtins.readFile ../Cargo.toml);

  cfg = lib.imageConfig { role = "worker"; init = "/init/bin/tini"; env = { FOO = "bar"; }; };

  tests = [
    # ---- systems
    { name = "systems"; got = lib.systems; want = [ "x86_64-linux" "aarch64-linux" ]; }
    { name = "forSystems"; got = lib.forSystems (s: "pkg-${s}");
      want = { x86_64-linux = "pkg-x86_64-linux"; aarch64-linux = "pkg-aarch64-linux"; }; }

    # ---- toolchain in step with Cargo.toml's rust-version ("1.95" -> "1.95.0")
    { name = "toolchain matches Cargo.toml rust-version";
      got = lib.hasPrefix cargo.package.rust-version lib.rustToolchainVersion; want = true; }
    { name = "toolchain has clippy and rustfmt";
      got = all (e: elem e lib.rustToolchainExtensions) [ "clippy" "rustfmt" ]; want = true; }
    { name = "package name"; got = cargo.package.name; want = "perflab"; }
    { name = "Cargo.lock exists (cargoLock.lockFile)";
      got = builtins.pathExists ../Cargo.lock; want = true; }

    # ---- runtime tools
    { name = "runtime tool names";
      got = lib.runtimeToolNames;
      want = [ "wrk" "nginx" "haproxy" "perf" "inferno" "postgresql" "openssh" "opentofu"
               "curl" "util-linux" "iproute2" "coreutils" "procps" "git" ]; }
    { name = "runtime tools resolve against nixpkgs attrs";
      got = lib.runtimeToolPackages stubPkgs;
      want = [ "wrk" "nginx" "haproxy" "perf" "inferno" "postgresql" "openssh" "opentofu"
               "curl" "util-linux" "iproute2" "coreutils" "procps" "git" ]; }
    { name = "perf comes from linuxPackages";
      got = lib.toolsByName stubPkgs [ "perf" ]; want = [ "perf" ]; }
    { name = "missing nixpkgs attribute throws";
      got = throws (lib.toolsByName (removeAttrs stubPkgs [ "wrk" ]) [ "wrk" ]); want = true; }
    { name = "unknown tool throws";
      got = throws (lib.toolsByName stubPkgs [ "kong" ]); want = true; }
    { name = "wrapper must find terraform, tofu, taskset, wrk, nginx, perf";
      got = all (b: elem b lib.expectedBins) [ "terraform" "tofu" "taskset" "wrk" "nginx" "perf" "ssh" "git" ];
      want = true; }
    { name = "terraform shim points at tofu"; got = lib.shimBins.terraform; want = "tofu"; }
    { name = "no duplicate tool names";
      got = length lib.runtimeToolNames
        == length (builtins.attrNames (builtins.listToAttrs (map (n: { name = n; value = 1; }) lib.runtimeToolNames)));
      want = true; }

    # ---- source filter: kept
    { name = "keeps Cargo.toml"; got = keep "Cargo.toml" "regular"; want = true; }
    { name = "keeps Cargo.lock"; got = keep "Cargo.lock" "regular"; want = true; }
    { name = "keeps src/"; got = keep "src" "directory"; want = true; }
    { name = "keeps src/main.rs"; got = keep "src/main.rs" "regular"; want = true; }
    { name = "keeps nested src file"; got = keep "src/role/load/wrk_parse.rs" "regular"; want = true; }
    { name = "keeps tests/fixtures/"; got = keep "tests/fixtures" "directory"; want = true; }
    { name = "keeps a fixture"; got = keep "tests/fixtures/wrk/output.txt" "regular"; want = true; }
    { name = "keeps suites"; got = keep "suites/rps/basic.toml" "regular"; want = true; }
    { name = "keeps docs"; got = keep "docs/nix.md" "regular"; want = true; }
    { name = "keeps nginx confs"; got = keep "nginx/upstream.conf" "regular"; want = true; }
    { name = "keeps terraform modules"; got = keep "terraform/aws/main.tf" "regular"; want = true; }
    { name = "keeps benches"; got = keep "benches/stats.rs" "regular"; want = true; }

    # ---- source filter: dropped
    { name = "drops target/"; got = keep "target" "directory"; want = false; }
    { name = "drops output/"; got = keep "output" "directory"; want = false; }
    { name = "drops .git"; got = keep ".git" "directory"; want = false; }
    { name = "drops result symlink"; got = keep "result" "symlink"; want = false; }
    { name = "drops flake.nix (no rebuild on nix edits)"; got = keep "flake.nix" "regular"; want = false; }
    { name = "drops nix/"; got = keep "nix" "directory"; want = false; }
    { name = "drops README"; got = keep "README.md" "regular"; want = false; }
    { name = "drops a file named like a kept dir"; got = keep "src" "regular"; want = false; }
    { name = "drops a dir named like a kept file"; got = keep "Cargo.toml" "directory"; want = false; }
    { name = "drops editor backups"; got = keep "src/main.rs~" "regular"; want = false; }
    { name = "drops vim swap"; got = keep "src/.main.rs.swp" "regular"; want = false; }
    { name = "drops emacs lock"; got = keep "src/.#main.rs" "symlink"; want = false; }
    { name = "drops terraform state"; got = keep "terraform/aws/terraform.tfstate" "regular"; want = false; }
    { name = "drops terraform state backup"; got = keep "terraform/aws/terraform.tfstate.backup" "regular"; want = false; }
    { name = "drops .terraform"; got = keep "terraform/aws/.terraform" "directory"; want = false; }
    { name = "drops paths outside root"; got = lib.sourceFilter root "/elsewhere/src/main.rs" "regular"; want = false; }
    { name = "drops sibling with root as prefix"; got = lib.sourceFilter root "${root}x/src" "directory"; want = false; }
    { name = "relativePath"; got = lib.relativePath root "${root}/a/b"; want = "a/b"; }
    { name = "relativePath of root"; got = lib.relativePath root root; want = ""; }

    # ---- images
    { name = "image names"; got = map lib.imageName (builtins.attrNames lib.imageRoles);
      want = [ "perflab-gateway-haproxy" "perflab-gateway-nginx" "perflab-lab" "perflab-worker" ]; }
    { name = "image tag"; got = lib.imageTag; want = "perflab"; }
    { name = "worker has nginx and wrk";
      got = all (t: elem t lib.imageRoles.worker) [ "nginx" "wrk" "coreutils" "util-linux" "curl" ]; want = true; }
    { name = "gateway images carry their gateway";
      got = elem "nginx" lib.imageRoles.gateway-nginx && elem "haproxy" lib.imageRoles.gateway-haproxy;
      want = true; }
    { name = "every image role names known tools";
      got = all (role: all (t: elem t (lib.runtimeToolNames ++ lib.imageOnlyToolNames)) lib.imageRoles.${role}) (builtins.attrNames lib.imageRoles);
      want = true; }
    { name = "the lab image has tar and getconf, which only images need";
      got = lib.toolsByName stubPkgs [ "gnutar" "glibc" ]; want = [ "gnutar" "glibc" ]; }
    { name = "image-only tools stay off the wrapper's PATH";
      got = any (t: elem t lib.runtimeToolNames) lib.imageOnlyToolNames; want = false; }
    { name = "image roles resolve against nixpkgs";
      got = lib.toolsByName stubPkgs lib.imageRoles.gateway-haproxy;
      want = [ "haproxy" "coreutils" "util-linux" "curl" "procps" ]; }
    { name = "image runs sleep infinity under the init";
      got = { inherit (cfg) Entrypoint Cmd; };
      want = { Entrypoint = [ "/init/bin/tini" "--" ]; Cmd = [ "sleep" "infinity" ]; }; }
    { name = "image env has PATH, role and extras";
      got = cfg.Env;
      want = [ "FOO=bar" "PATH=/bin:/usr/bin:/sbin:/usr/sbin" "PERFLAB_IMAGE_ROLE=worker" ]; }
    { name = "image labels"; got = cfg.Labels."io.perflab.role"; want = "worker"; }
    { name = "image extra labels merge";
      got = (lib.imageConfig { role = "x"; init = "/i"; labels = { a = "b"; }; }).Labels.a; want = "b"; }
    { name = "image dirs are relative";
      got = filter (d: lib.hasPrefix "/" d) (lib.imageDirs ++ lib.imageWorldWritableDirs); want = [ ]; }
    { name = "world-writable dirs are created";
      got = all (d: elem d lib.imageDirs) lib.imageWorldWritableDirs; want = true; }
    { name = "passwd has nobody";
      got = builtins.match ".*\nnobody:x:65534:65534:.*" lib.etcPasswd != null; want = true; }
    { name = "group has nogroup and nobody";
      got = builtins.match ".*\nnogroup:x:65534:\nnobody:x:65534:\n" lib.etcGroup != null; want = true; }

    # ---- provenance
    { name = "wrapper env with a rev";
      got = lib.wrapperEnv { nixpkgsRev = "abc"; };
      want = { PERFLAB_NIXPKGS_REV = "abc"; PERFLAB_TOOLCHAIN = "nix"; }; }
    { name = "wrapper env without a rev";
      got = (lib.wrapperEnv { }).PERFLAB_NIXPKGS_REV; want = "dirty"; }

    # ---- dev shells
    { name = "dev shells"; got = builtins.attrNames lib.devShells; want = [ "default" "docker" "terraform" ]; }
    { name = "docker shell adds the docker engine (dockerd)";
      got = lib.devShells.docker.extras; want = [ [ "docker" ] ]; }
    { name = "terraform shell adds tofu, ssh and the terraform shim";
      got = lib.devShells.terraform; want = { extras = [ [ "opentofu" ] [ "openssh" ] ]; terraformShim = true; }; }
    { name = "local driver tools: no tofu/ssh, but wrk, nginx, perf, taskset's util-linux";
      got = [ (elem "opentofu" lib.localDriverToolNames) (elem "openssh" lib.localDriverToolNames)
              (all (t: elem t lib.localDriverToolNames) [ "wrk" "nginx" "haproxy" "perf" "util-linux" "postgresql" ]) ];
      want = [ false false true ]; }

    # ---- helpers
    { name = "splitPath"; got = lib.splitPath "a//b/c/"; want = [ "a" "b" "c" ]; }
    { name = "hasSuffix"; got = [ (lib.hasSuffix ".rs" "a.rs") (lib.hasSuffix ".rs" "rs") ]; want = [ true false ]; }
  ];
in
all check tests
