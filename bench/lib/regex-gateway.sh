# Sourced by bench/sensitivity.sh and bench/compare-detect.sh: builds the throw-away gateway
# repository whose commits dial a slowdown.
#
# make_regex_gateway FIXTURE REPO WORK LEVELS…
#   FIXTURE  tests/fixtures/gateway-repo (perflab.toml + conf/nginx.conf.in with an
#            `# @EXTRA_SERVER@` marker)
#   REPO     an empty directory: becomes a git repository with tag `A` (a plain proxy) and, per
#            level N, tag `nN`: N regex locations that never match, tried before `/`, so nginx
#            runs N more regexes per request
#   WORK     scratch directory for the generated location blocks
make_regex_gateway() {
    local fixture=$1 repo=$2 work=$3
    shift 3
    local git_=(git -C "$repo" -c user.name=perflab-bench -c user.email=bench@example.invalid -c commit.gpgsign=false)
    mkdir -p "$repo/conf"
    "${git_[@]}" init -q
    cp "$fixture/perflab.toml" "$repo/perflab.toml"
    cp "$fixture/nginx.conf.in" "$repo/conf/nginx.conf.in"
    "${git_[@]}" add -A
    "${git_[@]}" commit -qm "A: plain proxy"
    "${git_[@]}" tag A
    local n i extra
    for n in "$@"; do
        "${git_[@]}" checkout -q --detach A
        extra=$work/extra-$n.conf
        : >"$extra"
        for ((i = 1; i <= n; i++)); do
            printf '        location ~ ^/api/v1/svc%d/items/([0-9]+)$ {{ return 404; }}\n' "$i" >>"$extra"
        done
        awk -v f="$extra" '/# @EXTRA_SERVER@/ { while ((getline l < f) > 0) print l; next } { print }' \
            "$fixture/nginx.conf.in" >"$repo/conf/nginx.conf.in"
        "${git_[@]}" commit -qam "B: $n regex locations before /"
        "${git_[@]}" tag "n$n"
    done
    "${git_[@]}" checkout -q --detach A
}
