-- wrk script for benches/peer.sh: every request is one durable one-key
-- update of etcd through its HTTP/JSON gateway:
--   POST {PREFIX}/kv/put   {"key":"<base64 KEY>","value":"<base64 tN-000042>"}
-- Usage: wrk ... -s etcd.lua http://127.0.0.1:PORT -- PREFIX KEY
-- PREFIX is the gateway prefix peer.sh found (/v3 for etcd 3.4, /v3beta for
-- 3.3). The values are the same as rewind.lua's: a ring of 997 values per
-- wrk thread, so consecutive writes differ. Requests are built once in
-- init(); request() only hands them out.

local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("id", threads)
end

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
   local out = {}
   for i = 1, #s, 3 do
      local a, b, c = s:byte(i, i + 2)
      local n = a * 65536 + (b or 0) * 256 + (c or 0)
      local c1 = math.floor(n / 262144) % 64
      local c2 = math.floor(n / 4096) % 64
      local c3 = math.floor(n / 64) % 64
      local c4 = n % 64
      out[#out + 1] = alphabet:sub(c1 + 1, c1 + 1)
      out[#out + 1] = alphabet:sub(c2 + 1, c2 + 1)
      out[#out + 1] = b and alphabet:sub(c3 + 1, c3 + 1) or "="
      out[#out + 1] = c and alphabet:sub(c4 + 1, c4 + 1) or "="
   end
   return table.concat(out)
end

local requests = {}
local next_request = 0

function init(args)
   local prefix = args[1] or "/v3"
   local key = base64(args[2] or "key")
   local path = prefix .. "/kv/put"
   for k = 1, 997 do
      local value = base64(string.format("t%d-%06d", id or 0, k))
      local body = string.format('{"key":"%s","value":"%s"}', key, value)
      requests[k] = wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
   end
end

function request()
   next_request = next_request % #requests + 1
   return requests[next_request]
end
