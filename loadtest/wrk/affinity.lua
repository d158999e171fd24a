-- Cookie affinity (nginx.ingress.kubernetes.io/affinity: cookie): each wrk thread is one client
-- that keeps the first affinity cookie it is given and sends it back, like a browser. Counts the
-- responses to requests carrying the cookie (those without a Set-Cookie) that came from another
-- backend than the first such response (the body names its backend, as hellok8s does). With a
-- working affinity it stays 0.
--
--   HOST=sticky.example.com COOKIE=route wrk -t1 -c16 -d10s -s loadtest/wrk/affinity.lua http://INGRESS_IP/

dofile((os.getenv("PORTICO_WRK_DIR") or "loadtest/wrk") .. "/common.lua")
local report_done = done

local cookie_name = os.getenv("COOKIE") or "route"
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local cookie = nil
local first_backend = nil
moved = 0
checked = 0
answered = 0

function request()
   local headers = {}
   if cookie then
      headers["Cookie"] = cookie
   end
   return wrk.format(nil, nil, headers)
end

function response(status, headers, body)
   answered = answered + 1
   local set = headers["Set-Cookie"] or headers["set-cookie"]
   if set then
      -- An answer to a request sent without the cookie (the first ones, in flight before the
      -- cookie came back): it picks a backend afresh, so it says nothing about affinity.
      if not cookie then
         cookie = set:match("^(" .. cookie_name .. "=[^;]*)")
      end
      return
   end
   checked = checked + 1
   if first_backend == nil then
      first_backend = body
   elseif body ~= first_backend then
      moved = moved + 1
   end
end

function done(summary, latency, requests)
   local total_moved, total_checked = 0, 0
   for _, t in ipairs(threads) do
      total_moved = total_moved + (t:get("moved") or 0)
      total_checked = total_checked + (t:get("checked") or 0)
   end
   io.write(string.format("affinity: %d of %d responses to requests with the cookie came from another backend\n",
                          total_moved, total_checked))
   if total_checked == 0 then
      io.write("affinity: nothing checked: no response came without a Set-Cookie (is the cookie name right?)\n")
   end
   report_done(summary, latency, requests)
end
