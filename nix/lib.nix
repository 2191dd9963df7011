# Pure helpers for perflab's flake.
#
# Everything here uses `builtins` only: no nixpkgs, no derivations, no paths
# copied to the store. flake.nix feeds these functions real packages; nix/tests.nix
# feeds them small stub attrsets, so `nix-instantiate --eval --strict nix/tests.nix`
# checks the logic on machines that cannot fetch nixpkgs.
let
  inherit (builtins)
    attrNames concatStringsSep elem filter foldl' hasAttr head isString length
    listToAttrs map split stringLength substring;

  # "a/b/c" -> [ "a" "b" "c" ] (empty segments dropped).
  splitPath = s: filter (x: isString x && x != "") (split "/" s);

  hasSuffix = suffix: s:
    let
      ls = stringLength s;
      lx = stringLength suffix;
    in
    ls >= lx && substring (ls - lx) lx s == suffix;

  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;

  last = xs: builtins.elemAt xs (length xs - 1);
in
rec {
  inherit splitPath hasSuffix hasPrefix;

  # ------------------------------------------------------------------ systems
  systems = [ "x86_64-linux" "aarch64-linux" ];

  # forSystems (system: value) -> { x86_64-linux = …; aarch64-linux = …; }
  forSystems = f: listToAttrs (map (system: { name = system; value = f system; }) systems);

  # ------------------------------------------------------------- toolchain pin
  # Cargo.toml says `rust-version = "1.95"`; nixpkgs release branches ship an
  # older rustc, so the flake takes this exact toolchain from rust-overlay.
  # nix/tests.nix checks that this stays in step with Cargo.toml.
  rustToolchainVersion = "1.95.0";
  rustToolchainExtensions = [ "clippy" "rustfmt" "rust-src" ];

  # ------------------------------------------------------------- runtime tools
  # What perflab runs on the machine it drives (local driver) or that it expects
  # on a worker/gateway host. `attrPath` is where nixpkgs keeps the package;
  # `bins` are the programs perflab looks up on PATH (checked when the wrapper
  # is built, so a renamed package fails the build, not a benchmark).
  runtimeTools = [
    { name = "wrk"; attrPath = [ "wrk" ]; bins = [ "wrk" ]; }
    { name = "nginx"; attrPath = [ "nginx" ]; bins = [ "nginx" ]; }
    { name = "haproxy"; attrPath = [ "haproxy" ]; bins = [ "haproxy" ]; }
    { name = "perf"; attrPath = [ "linuxPackages" "perf" ]; bins = [ "perf" ]; }
    { name = "inferno"; attrPath = [ "inferno" ]; bins = [ "inferno-collapse-perf" "inferno-flamegraph" ]; }
    { name = "postgresql"; attrPath = [ "postgresql" ]; bins = [ "postgres" "pg_ctl" "initdb" "psql" "pg_dump" "pg_isready" ]; }
    { name = "openssh"; attrPath = [ "openssh" ]; bins = [ "ssh" "scp" "ssh-keygen" ]; }
    { name = "opentofu"; attrPath = [ "opentofu" ]; bins = [ "tofu" ]; }
    { name = "curl"; attrPath = [ "curl" ]; bins = [ "curl" ]; }
    { name = "util-linux"; attrPath = [ "util-linux" ]; bins = [ "taskset" "setsid" "setpriv" "kill" ]; }
    { name = "iproute2"; attrPath = [ "iproute2" ]; bins = [ "ip" ]; }
    { name = "coreutils"; attrPath = [ "coreutils" ];
      bins = [ "sleep" "cat" "nproc" "mkdir" "rm" "ls" "env" "mv" "readlink" "dd" "mktemp" "wc" "chown" "chmod" "id" "test" ]; }
    { name = "procps"; attrPath = [ "procps" ]; bins = [ "ps" "pgrep" ]; }
    { name = "git"; attrPath = [ "git" ]; bins = [ "git" ]; }
  ];

  runtimeToolNames = map (t: t.name) runtimeTools;

  # Programs only the docker driver's lab image needs (the container host and the
  # session run them in every container: src/image/rootfs.rs REQUIRED_BINARIES); kept off
  # the wrapper's PATH. On glibc systems getconf is glibc's (its bin output).
  imageOnlyTools = [
    { name = "gnutar"; attrPath = [ "gnutar" ]; bins = [ "tar" ]; }
    { name = "glibc"; attrPath = [ "glibc" ]; bins = [ "getconf" ]; }
  ];
  imageOnlyToolNames = map (t: t.name) imageOnlyTools;

  # Programs the wrapper adds on top of the packages (see terraformShim in flake.nix).
  # perflab's terraform driver runs `terraform`; Terraform is unfree, so the
  # wrapper puts a `terraform` -> `tofu` symlink on PATH instead.
  shimBins = { terraform = "tofu"; };

  # All program names the wrapped perflab must find on PATH.
  expectedBins = foldl' (acc: t: acc ++ t.bins) [ ] runtimeTools ++ attrNames shimBins;

  # Look up `attrPath` in `set`, with an error naming the missing attribute.
  getAttrPath = attrPath: set:
    foldl'
      (s: n:
        if hasAttr n s then s.${n}
        else throw "perflab: nixpkgs has no attribute `${concatStringsSep "." attrPath}`")
      set
      attrPath;

  # Packages for a list of tool names, from `pkgs` (real nixpkgs or a stub).
  toolsByName = pkgs: names:
    map
      (n:
        let
          matches = filter (t: t.name == n) (runtimeTools ++ imageOnlyTools);
        in
        if matches == [ ] then throw "perflab: unknown runtime tool `${n}`"
        else getAttrPath (head matches).attrPath pkgs)
      names;

  runtimeToolPackages = pkgs: toolsByName pkgs runtimeToolNames;

  # Dev shells (`nix develop .#NAME`). Every shell gets the Rust toolchain and
  # the local driver's tools; `extras` are further nixpkgs attribute paths and
  # `terraformShim` adds the `terraform` -> `tofu` symlink.
  localDriverToolNames = filter (n: !(elem n [ "opentofu" "openssh" ])) runtimeToolNames;
  devShells = {
    default = { extras = [ ]; terraformShim = false; };
    # `docker`, not `docker-client`: perflab talks to the engine through its API (bollard)
    # and never runs the CLI, but scripts/start-dockerd.sh needs the daemon, `dockerd`, which
    # nixpkgs' `docker-client` (docker.override { clientOnly = true; }) leaves out.
    docker = { extras = [ [ "docker" ] ]; terraformShim = false; };
    terraform = { extras = [ [ "opentofu" ] [ "openssh" ] ]; terraformShim = true; };
  };

  # -------------------------------------------------------------- source filter
  # Top-level entries that go into the build's source. Everything else (target/,
  # output/, result*, .git, editor files, worktrees) stays out, so editing a
  # README or producing results does not rebuild perflab.
  sourceDirs = [ "src" "tests" "suites" "docs" "nginx" "terraform" "benches" ];
  sourceFiles = [ "Cargo.toml" "Cargo.lock" "build.rs" ];

  # Names dropped anywhere below a kept directory.
  junkNames = [ ".git" ".terraform" ".terraform.lock.hcl" "terraform.tfstate" ".DS_Store" "target" ];
  isJunk = name:
    elem name junkNames
    || hasSuffix "~" name
    || hasSuffix ".swp" name
    || hasSuffix ".tfstate" name
    || hasSuffix ".tfstate.backup" name
    || hasPrefix ".#" name;

  # Path of `path` relative to `root` ("" for root itself), or null if outside.
  relativePath = root: path:
    let
      r = toString root;
      p = toString path;
      lr = stringLength r;
    in
    if p == r then ""
    else if substring 0 (lr + 1) p == r + "/" then substring (lr + 1) (stringLength p - lr - 1) p
    else null;

  # The predicate for `lib.cleanSourceWith { filter = sourceFilter root; }`.
  # `path` and `type` are what Nix passes to source filters ("regular",
  # "directory", "symlink", "unknown").
  sourceFilter = root: path: type:
    let
      rel = relativePath root path;
      parts = if rel == null then [ ] else splitPath rel;
      top = head parts;
    in
    if rel == null || parts == [ ] then false
    else if length parts == 1 then
      (type == "directory" && elem top sourceDirs)
      || (type != "directory" && elem top sourceFiles)
    else
      elem top sourceDirs && !(isJunk (last parts));

  # ------------------------------------------------------------------ images
  # The docker driver keeps one long-lived container per role and execs the
  # role's programs into it. So every image idles under an init (tini: PID 1
  # forwards SIGTERM and reaps exec'd children) running `sleep infinity`.
  imageTag = "perflab";
  imageName = role: "perflab-${role}";

  # Which runtime tools go into which image (names index `runtimeTools`).
  # Every image also gets a /bin/sh, tini and the /etc files below.
  #
  # `lab` is the one image the docker driver runs by default (perflab/lab:latest,
  # which `perflab image load` tags it as): every role's programs and every program
  # the driver requires (tests/integration/nix_image.rs checks this list against src/image/rootfs.rs).
  imageRoles = {
    lab = [ "nginx" "wrk" "haproxy" "curl" "util-linux" "coreutils" "procps" "iproute2" "postgresql" "gnutar" "glibc" ];
    worker = [ "nginx" "wrk" "coreutils" "util-linux" "curl" "procps" "iproute2" ];
    gateway-nginx = [ "nginx" "coreutils" "util-linux" "curl" "procps" ];
    gateway-haproxy = [ "haproxy" "coreutils" "util-linux" "curl" "procps" ];
  };

  # Directories created in the image root (relative: the image builder's
  # extraCommands runs inside the root). nginx opens its compiled-in log and
  # temp paths before reading a config, so those exist too.
  imageDirs = [ "tmp" "var/tmp" "var/log/nginx" "var/cache/nginx" "run" "work" ];
  imageWorldWritableDirs = [ "tmp" "var/tmp" ];

  # /etc/passwd and /etc/group: root, plus nobody/nogroup for nginx's and
  # haproxy's default unprivileged user.
  etcPasswd = concatStringsSep "\n" [
    "root:x:0:0:root:/root:/bin/sh"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false"
    ""
  ];
  etcGroup = concatStringsSep "\n" [
    "root:x:0:"
    "nogroup:x:65534:"
    "nobody:x:65534:"
    ""
  ];
  etcNsswitch = "hosts: files dns\npasswd: files\ngroup: files\n";

  # Docker image config (the `config` of dockerTools.buildLayeredImage).
  # `init`: absolute path of the init binary (a store path in the flake, any
  # string in tests). `env`: extra environment as an attrset.
  imageConfig = { role, init, env ? { }, labels ? { } }:
    let
      fullEnv = { PATH = "/bin:/usr/bin:/sbin:/usr/sbin"; PERFLAB_IMAGE_ROLE = role; } // env;
    in
    {
      Entrypoint = [ init "--" ];
      Cmd = [ "sleep" "infinity" ];
      Env = map (k: "${k}=${fullEnv.${k}}") (attrNames fullEnv);
      WorkingDir = "/work";
      StopSignal = "SIGTERM";
      Labels = {
        "org.opencontainers.image.title" = imageName role;
        "io.perflab.role" = role;
        "io.perflab.built-by" = "nix";
      } // labels;
    };

  # --------------------------------------------------------------- provenance
  # What the wrapper exports so perflab can put it in a result's fingerprint.
  # `rev` is nixpkgs' git revision; a dirty/local checkout has none.
  wrapperEnv = { nixpkgsRev ? null }: {
    PERFLAB_NIXPKGS_REV = if nixpkgsRev == null then "dirty" else nixpkgsRev;
    PERFLAB_TOOLCHAIN = "nix";
  };
}
