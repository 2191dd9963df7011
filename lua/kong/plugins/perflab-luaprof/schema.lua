-- perflab's Lua-level sampler has no configuration: it is loaded (`plugins`), never configured.
return {
  name = "perflab-luaprof",
  fields = {
    { config = { type = "record", fields = {} } },
  },
}
