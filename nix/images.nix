# Docker images for the docker driver, built from the same nixpkgs
# derivations as the `perflab-wrapped` package. Each is a gzipped `docker save` archive
# (`nix build .#image-worker` leaves it at ./result) for
# `perflab image load result` or `docker load -i result`.
#
# Every image idles as `tini -- sleep infinity`; the driver execs roles into it.
{ pkgs, plib }:
let
  inherit (pkgs) lib;

  tini = "${pkgs.tini}/bin/tini";

  etc = [
    (pkgs.writeTextDir "etc/passwd" plib.etcPasswd)
    (pkgs.writeTextDir "etc/group" plib.etcGroup)
    (pkgs.writeTextDir "etc/nsswitch.conf" plib.etcNsswitch)
  ];

  mkImage = role: toolNames:
    pkgs.dockerTools.buildLayeredImage {
      name = plib.imageName role;
      tag = plib.imageTag;
      contents =
        map lib.getBin (plib.toolsByName pkgs toolNames)
        ++ [ pkgs.tini pkgs.dockerTools.binSh pkgs.dockerTools.usrBinEnv ]
        ++ etc;
      extraCommands = ''
        mkdir -p ${lib.escapeShellArgs plib.imageDirs}
        chmod 1777 ${lib.escapeShellArgs plib.imageWorldWritableDirs}
      '';
      config = plib.imageConfig { inherit role; init = tini; };
    };
in
lib.mapAttrs' (role: tools: lib.nameValuePair "image-${role}" (mkImage role tools)) plib.imageRoles
