{
  description = "perflab: a reproducible benchmark lab for HTTP API gateways";

  inputs = {
    # A NixOS release branch: the benchmark tools (wrk, nginx, haproxy, perf,
    # postgresql, …) come from here, and their rev goes into every result's
    # fingerprint (PERFLAB_NIXPKGS_REV).
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";
    # Only for the Rust toolchain: Cargo.toml needs rustc 1.95, newer than any
    # release branch's rustc. Pinned to the exact version in nix/lib.nix.
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs = { self, nixpkgs, rust-overlay }:
    let
      plib = import ./nix/lib.nix;

      perSystem = system:
        let
          pkgs = import nixpkgs {
            inherit system;
            overlays = [ rust-overlay.overlays.default ];
          };
          built = import ./nix/packages.nix {
            inherit pkgs plib;
            root = ./.;
            nixpkgsRev = nixpkgs.rev or null;
            commit = self.rev or self.dirtyRev or null;
          };
          images = import ./nix/images.nix { inherit pkgs plib; };
          app = description: {
            type = "app";
            program = "${built.perflab-wrapped}/bin/perflab";
            meta = { inherit description; };
          };
        in
        {
          packages = {
            inherit (built) perflab perflab-wrapped;
            default = built.perflab-wrapped;
          } // images;

          apps = {
            perf = app "perflab with its runtime tools on PATH";
            default = app "perflab with its runtime tools on PATH";
          };

          inherit (built) devShells checks;
        };

      bySystem = plib.forSystems perSystem;
      pick = attr: builtins.mapAttrs (_: outputs: outputs.${attr}) bySystem;
    in
    {
      packages = pick "packages";
      apps = pick "apps";
      devShells = pick "devShells";
      checks = pick "checks";

      # The pure helpers (tool list, source filter, image config), for reuse.
      lib = plib;
    };
}
