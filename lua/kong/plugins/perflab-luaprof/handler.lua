-- perflab's Lua-level sampler for Kong (part of perflab, not of Kong).
--
-- perf cannot name Lua code: OpenResty has no frame pointers and JIT-compiled traces have no
-- symbols, so a perf profile of Kong is a tower of [unknown] frames. LuaJIT's own sampling
-- profiler (jit.profile) can: its callback sees the Lua stack, and profile.dumpstack() prints
-- it with function names and file:line. This plugin runs it in every nginx worker of Kong.
--
-- Kong calls init_worker for every *loaded* plugin (kong/init.lua,
-- execute_init_worker_plugins_iterator over plugins_iterator.loaded), configured on a route or
-- not, so loading the plugin (`plugins = bundled,perflab-luaprof`) is enough; it has no request
-- phases and costs nothing per request. While idle, each worker reads one small file every
-- POLL_S seconds.
--
-- Control protocol (files in PREFIX/perflab-luaprof/, written by perflab):
--   control          "start GEN INTERVAL_MS" or "stop GEN" (anything else: idle)
--   PID.state        written by each worker: "idle", "started GEN" or "stopped GEN"
--   PID-GEN.folded   the worker's samples of profile GEN, one "COUNT VMSTATE STACK" line per
--                    distinct stack; STACK is root-first frames separated by ";", each frame
--                    "FUNCTION<TAB>FILE:LINE" (dumpstack format "pf\tlZ;").
-- perflab turns these into folded stacks (src/role/lua_profiler.rs).

local profile = require "jit.profile"

local io_open = io.open
local os_rename = os.rename
local tostring = tostring
local tonumber = tonumber
local concat = table.concat

local POLL_S = 0.1
-- Frames per stack, root first (a negative depth dumps the stack in reverse order).
local DEPTH = -64
local FORMAT = "pf\tlZ;"

local SamplerHandler = {
  PRIORITY = 0,
  VERSION = "1.0.0",
}

local dir, pid
local counts = {}
local running -- the generation being profiled, or nil

local function read_file(path)
  local f = io_open(path, "rb")
  if not f then
    return nil
  end
  local text = f:read("*a")
  f:close()
  return text
end

-- Writes through a temporary file and a rename, so perflab never reads half a file.
local function write_file(path, text)
  local tmp = path .. ".tmp"
  local f, err = io_open(tmp, "wb")
  if not f then
    return nil, err
  end
  f:write(text)
  f:close()
  return os_rename(tmp, path)
end

local function on_sample(thread, samples, vmstate)
  local key = vmstate .. " " .. profile.dumpstack(thread, FORMAT, DEPTH)
  counts[key] = (counts[key] or 0) + samples
end

local function set_state(text)
  local ok, err = write_file(dir .. "/" .. pid .. ".state", text)
  if not ok then
    ngx.log(ngx.ERR, "perflab-luaprof: cannot write its state in ", dir, ": ", err)
  end
end

local function start(gen, interval_ms)
  if running then
    profile.stop()
  end
  counts = {}
  profile.start("li" .. interval_ms, on_sample)
  running = gen
  set_state("started " .. gen)
end

local function stop_and_dump()
  profile.stop()
  local lines, n = {}, 0
  for key, count in pairs(counts) do
    n = n + 1
    -- A chunk name may hold a newline (code loaded from a string): keep one line per stack.
    lines[n] = count .. " " .. key:gsub("\n", " ")
  end
  local gen = running
  running = nil
  counts = {}
  local ok, err = write_file(dir .. "/" .. pid .. "-" .. gen .. ".folded", concat(lines, "\n"))
  if not ok then
    ngx.log(ngx.ERR, "perflab-luaprof: cannot write its samples in ", dir, ": ", err)
  end
  set_state("stopped " .. gen)
end

local function tick(premature)
  if premature then
    -- The worker is exiting: stop the timer signal; samples of an unfinished run are dropped.
    if running then
      profile.stop()
      running = nil
    end
    return
  end
  local control = read_file(dir .. "/control")
  if not control then
    return
  end
  local verb, gen, interval = control:match("^(%a+) (%d+) ?(%d*)")
  if verb == "start" and running ~= gen then
    start(gen, tonumber(interval) or 10)
  elseif verb == "stop" and running == gen then
    stop_and_dump()
  end
end

function SamplerHandler:init_worker()
  -- One sampler per worker: not in the privileged agent (no worker id) nor in the stream
  -- subsystem's second Lua VM of the same process.
  if ngx.config.subsystem ~= "http" or ngx.worker.id() == nil then
    return
  end
  dir = kong.configuration.prefix .. "/perflab-luaprof"
  pid = tostring(ngx.worker.pid())
  set_state("idle")
  local ok, err = ngx.timer.every(POLL_S, tick)
  if not ok then
    ngx.log(ngx.ERR, "perflab-luaprof: cannot start its timer: ", err)
  end
end

return SamplerHandler
