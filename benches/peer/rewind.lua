-- wrk script for benches/peer.sh: every request is one durable one-key
-- update of one rewind tenant:
--   PATCH /v1/tenants/{tenant}/state   [{"op":"replace","path":"/key","value":"tN-000042"}]
-- Usage: wrk ... -s rewind.lua http://127.0.0.1:PORT -- TENANT KEY
-- The value differs from one request to the next (a ring of 997 values per
-- wrk thread, prefixed with the thread number), so no write is a no-op.
-- Requests are built once in init(); request() only hands them out.

local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("id", threads)
end

local requests = {}
local next_request = 0

function init(args)
   local tenant = args[1] or "bench"
   local key = args[2] or "key"
   local path = "/v1/tenants/" .. tenant .. "/state"
   for k = 1, 997 do
      local value = string.format("t%d-%06d", id or 0, k)
      local body = string.format('[{"op":"replace","path":"/%s","value":"%s"}]', key, value)
      requests[k] = wrk.format("PATCH", path, { ["Content-Type"] = "application/json" }, body)
   end
end

function request()
   next_request = next_request % #requests + 1
   return requests[next_request]
end
