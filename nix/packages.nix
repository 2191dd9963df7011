# perflab's derivations for one system: the package, `perflab-wrapped`
# package with its runtime tools, the cargo checks and the dev shells.
#
# Arguments:
#   pkgs       nixpkgs for the system, with rust-overlay's overlay applied
#   plib       import ./lib.nix (pure helpers)
#   root       the flake's source tree (a path)
#   nixpkgsRev nixpkgs' git revision, or null when unknown
#   commit     perflab's own revision (the flake's self.rev, or self.dirtyRev
#              "<rev>-dirty"), or null for an uncommitted tree: recorded in every
#              result's fingerprint (perflab.commit) instead of `null`
{ pkgs, plib, root, nixpkgsRev ? null, commit ? null }:
let
  inherit (pkgs) lib;

  cargoToml = builtins.fromTOML (builtins.readFile (root + "/Cargo.toml"));
  version = cargoToml.package.version;

  # Exactly the toolchain Cargo.toml's rust-version asks for (see lib.nix).
  toolchain = pkgs.rust-bin.stable.${plib.rustToolchainVersion}.default.override {
    extensions = plib.rustToolchainExtensions;
  };
  rustPlatform = pkgs.makeRustPlatform { cargo = toolchain; rustc = toolchain; };

  src = lib.cleanSourceWith {
    name = "perflab-source";
    src = root;
    filter = plib.sourceFilter (toString root);
  };

  # Shared by the package and the cargo checks, so checks reuse the same
  # vendored crates (cargoLock) and native inputs.
  commonArgs = {
    inherit version src;
    cargoLock.lockFile = root + "/Cargo.lock";
    # libgit2 is vendored (git2's vendored-libgit2) and built with cc; it
    # links zlib, which libz-sys finds through pkg-config.
    nativeBuildInputs = [ pkgs.pkg-config ];
    buildInputs = [ pkgs.zlib ];
    doCheck = false;
    # Read by src/fingerprint.rs at compile time (option_env!).
    PERFLAB_BUILD_COMMIT = if commit == null then "dirty" else commit;
  };

  perflab = rustPlatform.buildRustPackage (commonArgs // {
    pname = "perflab";
    # Suites and terraform modules beside the binary: src/install.rs finds them in
    # $out/share/perflab when perflab runs outside a checkout (`nix run .#perf`).
    postInstall = ''
      mkdir -p $out/share/perflab
      cp -r suites terraform $out/share/perflab/
    '';
    meta = {
      description = cargoToml.package.description;
      license = lib.licenses.asl20;
      mainProgram = "perflab";
      platforms = plib.systems;
    };
  });

  # perflab's terraform driver runs `terraform`. Terraform is unfree in
  # nixpkgs; OpenTofu speaks the same CLI, so `terraform` here is `tofu`.
  terraformShim = pkgs.runCommand "perflab-terraform-shim" { } ''
    mkdir -p $out/bin
    ln -s ${lib.getExe' pkgs.opentofu plib.shimBins.terraform} $out/bin/terraform
  '';

  runtimeTools = plib.runtimeToolPackages pkgs;
  runtimePath = lib.makeBinPath (runtimeTools ++ [ terraformShim ]);
  wrapperEnv = plib.wrapperEnv { inherit nixpkgsRev; };

  # perflab with every runtime tool on PATH (prepended: the user's PATH stays
  # reachable behind it, e.g. for sudo or a docker CLI).
  # Named so it is not mistaken for Linux `perf` (which it puts on PATH).
  perflab-wrapped = pkgs.symlinkJoin {
    name = "perflab-wrapped-${version}";
    paths = [ perflab ];
    nativeBuildInputs = [ pkgs.makeWrapper ];
    postBuild = ''
      wrapProgram $out/bin/perflab \
        --prefix PATH : ${lib.escapeShellArg runtimePath} \
        ${lib.concatStringsSep " " (lib.mapAttrsToList (k: v: "--set ${k} ${lib.escapeShellArg v}") wrapperEnv)}

      # Fail the build, not a benchmark, when a tool is missing or renamed.
      for bin in ${lib.escapeShellArgs plib.expectedBins}; do
        if ! PATH=${lib.escapeShellArg runtimePath} command -v "$bin" >/dev/null; then
          echo "perflab-wrapped: runtime tool '$bin' not found on the wrapper's PATH" >&2
          exit 1
        fi
      done
    '';
    meta = perflab.meta // {
      description = "perflab with its runtime tools (wrk, nginx, haproxy, perf, …) on PATH";
    };
  };

  # A check that runs one cargo command over the vendored sources and
  # produces an empty output. The cargo build/install hooks are switched off.
  cargoCheck = name: command: rustPlatform.buildRustPackage (commonArgs // {
    pname = "perflab-${name}";
    dontCargoBuild = true;
    dontCargoInstall = true;
    buildPhase = ''
      runHook preBuild
      export HOME=$TMPDIR
      ${command}
      runHook postBuild
    '';
    installPhase = ''
      runHook preInstall
      touch $out
      runHook postInstall
    '';
  });

  checks = {
    build = perflab;
    wrapper = perflab-wrapped;
    clippy = cargoCheck "clippy" "cargo clippy --all-targets --offline --locked -- -D warnings";
    fmt = cargoCheck "fmt" "cargo fmt --all --check";
    # Unit tests only: the integration tests need dockerd, sshd, perf,
    # network namespaces or live nginx/wrk runs (docs/nix.md lists them).
    unit-tests = cargoCheck "unit-tests" "cargo test --lib --offline --locked";
    # nix/tests.nix evaluated at `nix flake check` time.
    nix-lib = assert import ./tests.nix; pkgs.runCommand "perflab-nix-lib-tests" { } "touch $out";
  };

  mkShell = name: spec: pkgs.mkShell {
    name = "perflab-${name}";
    nativeBuildInputs = [ toolchain pkgs.pkg-config ]
      ++ plib.toolsByName pkgs plib.localDriverToolNames
      ++ map (p: plib.getAttrPath p pkgs) spec.extras
      ++ lib.optional spec.terraformShim terraformShim;
    buildInputs = [ pkgs.zlib ];
    env = wrapperEnv // {
      PERFLAB_TOOLCHAIN = "nix-devshell";
      RUST_SRC_PATH = "${toolchain}/lib/rustlib/src/rust/library";
    };
  };

  devShells = lib.mapAttrs mkShell plib.devShells;
in
{
  inherit perflab perflab-wrapped checks devShells toolchain terraformShim;
}
