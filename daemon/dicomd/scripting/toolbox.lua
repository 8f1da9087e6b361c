-- dicomd's Lua toolbox, loaded into each Lua runtime before the user's scripts.
--
-- It defines Orthanc's built-in functions on top of `_dicomd`, a table of Python functions
-- that never raise: each returns `ok, value`. The wrappers below turn a failure into a Lua
-- error raised at the caller's line, so that the script's name and line show in the log.

local _dicomd = _dicomd
_G._dicomd = nil

-- Lua 5.1/5.2 names that old Orthanc scripts still use.
unpack = unpack or table.unpack
loadstring = loadstring or load
table.getn = table.getn or function(t) return #t end
table.maxn = table.maxn or function(t)
   local n = 0
   for k in pairs(t) do
      if type(k) == 'number' and k > n then n = k end
   end
   return n
end
math.pow = math.pow or function(x, y) return x ^ y end
math.mod = math.mod or math.fmod
string.gfind = string.gfind or string.gmatch

local function check(ok, value)
   if not ok then
      error(value, 3)
   end
   return value
end

function print(...)
   local parts = {}
   for i = 1, select('#', ...) do
      parts[#parts + 1] = tostring((select(i, ...)))
   end
   _dicomd.print(table.concat(parts, ', '))
end

-- Prints nested tables, one line per value: "\t[key]\t[key], <type>, <value>".
function PrintRecursive(value, limit, indent)
   limit = limit or 100
   indent = indent or ''
   local function line(...)
      if indent == '' then print(...) else print(indent, ...) end
   end
   if limit < 1 then
      print('ERROR: Item limit reached.')
      return limit - 1
   end
   if type(value) ~= 'table' then
      line(type(value), value)
      return limit - 1
   end
   line('table')
   for key, item in pairs(value) do
      limit = PrintRecursive(item, limit, indent .. '\t[' .. tostring(key) .. ']')
      if limit < 0 then break end
   end
   return limit
end

function ParseJson(text) return check(_dicomd.parse_json(text)) end
function DumpJson(value, keepStrings) return check(_dicomd.dump_json(value, keepStrings)) end
function GetOrthancConfiguration() return check(_dicomd.configuration()) end

-- Orthanc reads `builtin` only when it is the last argument: passing headers resets it.
function RestApiGet(uri, builtin, headers)
   return check(_dicomd.rest('GET', uri, nil, headers))
end
function RestApiPost(uri, body, builtin, headers)
   return check(_dicomd.rest('POST', uri, body, headers))
end
function RestApiPut(uri, body, builtin, headers)
   return check(_dicomd.rest('PUT', uri, body, headers))
end
function RestApiDelete(uri, builtin, headers)
   return check(_dicomd.rest('DELETE', uri, nil, headers))
end

function HttpGet(url, headers) return check(_dicomd.http('GET', url, nil, headers)) end
function HttpPost(url, body, headers) return check(_dicomd.http('POST', url, body, headers)) end
function HttpPut(url, body, headers) return check(_dicomd.http('PUT', url, body, headers)) end
function HttpDelete(url, headers) return check(_dicomd.http('DELETE', url, nil, headers)) end
function SetHttpCredentials(username, password)
   return check(_dicomd.set_http_credentials(username, password))
end
function SetHttpTimeout(seconds) return check(_dicomd.set_http_timeout(seconds)) end

function SetStableStatus(resourceId, isStable)
   return check(_dicomd.set_stable_status(resourceId, isStable))
end

-- Routing primitives: as in Orthanc they append operations to a list that is run, in
-- order, once the callback returned (`_dicomd_take_job`).
_job = {}

local function append(operation)
   if operation.Resource == nil then
      error('Cannot ' .. operation.Operation .. ' a nonexistent resource', 3)
   end
   table.insert(_job, operation)
   return operation.Resource
end

function SendToPeer(resourceId, peer)
   return append({ Operation = 'store-peer', Resource = resourceId, Peer = peer })
end

function Delete(resourceId)
   append({ Operation = 'delete', Resource = resourceId })
   return nil
end

function CallSystem(resourceId, command, args)
   return append({ Operation = 'call-system', Resource = resourceId, Command = command,
                   Arguments = args or {} })
end

function SendToModality(resourceId, modality, localAet)
   error('SendToModality is not supported yet: dicomd has no DICOM networking', 2)
end

function ModifyInstance(resourceId, replace, remove, removePrivateTags)
   error('ModifyInstance is not supported yet: dicomd cannot modify instances', 2)
end
ModifyResource = ModifyInstance

function _dicomd_take_job()
   local job = _job
   _job = {}
   return job
end

-- A table whose content is fetched on first use: a stored instance's tags cost reading and
-- parsing its file, which a callback that never looks at them should not pay. `fetch`
-- returns `ok, table`. Indexing, `pairs`, `#` and assignment fill it; so does
-- `_dicomd_fill`, which the Python side calls before converting a table.
local function fill(t)
   local fetch = getmetatable(t).fetch
   setmetatable(t, nil)
   for key, value in pairs(check(fetch())) do
      rawset(t, key, value)
   end
   return t
end
function _dicomd_lazy(fetch)
   return setmetatable({}, {
      fetch = fetch,
      __index = function(t, key) return rawget(fill(t), key) end,
      __newindex = function(t, key, value) rawset(fill(t), key, value) end,
      __pairs = function(t) return next, fill(t), nil end,
      __len = function(t) return rawlen(fill(t)) end,
   })
end
function _dicomd_fill(t)
   local meta = getmetatable(t)
   if meta ~= nil and rawget(meta, 'fetch') ~= nil then
      fill(t)
   end
   return t
end

-- Calls a global function by name if the scripts define it: `defined, ok, result`.
function _dicomd_call(name, ...)
   local callback = _G[name]
   if type(callback) ~= 'function' then
      return false
   end
   local ok, result = xpcall(callback, debug.traceback, ...)
   return true, ok, result
end

-- Runs a chunk of source named `name` (a script file, or `execute-script`): `ok, error`.
function _dicomd_run(source, name)
   local chunk, err = load(source, name)
   if chunk == nil then
      return false, err
   end
   local ok, error = xpcall(chunk, debug.traceback)
   return ok, error
end

-- Which of these global names are functions.
function _dicomd_defined(names)
   local found = {}
   for _, name in ipairs(names) do
      if type(_G[name]) == 'function' then
         found[#found + 1] = name
      end
   end
   return found
end
