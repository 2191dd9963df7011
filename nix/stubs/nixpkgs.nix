# A tiny stand-in for nixpkgs, used only by nix/flake-tests.nix to evaluate
# flake.nix's outputs where nixpkgs cannot be fetched. Builders return plain
# attrsets that record their arguments, so tests can inspect what the flake
# asked for. It models the nixpkgs API the flake uses; it builds nothing.
{ system, overlays ? [ ] }:
let
  inherit (builtins) attrNames concatStringsSep foldl' listToAttrs map replaceStrings;

  drv = name: extra: {
    type = "derivation";
    inherit name system;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  } // extra;
  pkg = name: drv name { pname = name; };
  recorded = kind: args: drv "${kind}-${args.name or args.pname or "anon"}" { stubArgs = args; };

  lib = rec {
    inherit concatStringsSep;
    mapAttrs = builtins.mapAttrs;
    mapAttrsToList = f: s: map (k: f k s.${k}) (attrNames s);
    nameValuePair = name: value: { inherit name value; };
    mapAttrs' = f: s: listToAttrs (mapAttrsToList f s);
    optional = cond: x: if cond then [ x ] else [ ];
    escapeShellArg = s: "'${replaceStrings [ "'" ] [ "'\\''" ] (toString s)}'";
    escapeShellArgs = l: concatStringsSep " " (map escapeShellArg l);
    getBin = p: p;
    getExe' = p: bin: "${getBin p}/bin/${bin}";
    makeBinPath = l: concatStringsSep ":" (map (p: "${getBin p}/bin") l);
    # Records the filter's verdict on a few paths instead of copying a tree.
    cleanSourceWith = { src, filter, name ? "source" }: {
      inherit name;
      outPath = "/nix/store/00000000000000000000000000000000-${name}";
      verdicts = {
        src = filter "${toString src}/src" "directory";
        cargoLock = filter "${toString src}/Cargo.lock" "regular";
        fixture = filter "${toString src}/tests/fixtures/x.txt" "regular";
        target = filter "${toString src}/target" "directory";
        flake = filter "${toString src}/flake.nix" "regular";
      };
    };
    licenses.asl20 = { spdxId = "Apache-2.0"; };
  };

  tools = listToAttrs (map (n: { name = n; value = pkg n; }) [
    "wrk" "nginx" "haproxy" "inferno" "postgresql" "openssh" "opentofu" "curl"
    "util-linux" "iproute2" "coreutils" "procps" "git" "zlib" "pkg-config"
    "makeWrapper" "tini" "docker" "gnutar" "glibc"
  ]);

  base = tools // {
    inherit lib system;
    linuxPackages.perf = pkg "perf";
    makeRustPlatform = { cargo, rustc }: {
      buildRustPackage = args: recorded "rust" (args // { stubToolchain = cargo; });
    };
    runCommand = name: env: script: recorded "run" { inherit name env script; };
    symlinkJoin = args: recorded "join" args;
    mkShell = args: recorded "shell" args;
    writeTextDir = path: text: recorded "text" { name = baseNameOf path; inherit path text; };
    dockerTools = {
      buildLayeredImage = args: recorded "image" args;
      binSh = pkg "bin-sh";
      usrBinEnv = pkg "usr-bin-env";
    };
  };

  # Apply overlays like nixpkgs does (final, prev).
  pkgs = foldl' (prev: overlay: prev // overlay pkgs prev) base overlays;
in
pkgs
