-- Cycle through a pool of pre-built requests, one per line of a file. With webhooks every wrk
-- thread takes its own share of the lines, so no delivery is sent twice until a thread has
-- used all of its share; with other requests every thread cycles through all the lines.
--
--   wrk -s bench/wrk/pool.lua URL -- POOL_FILE MODE THREADS ["Header: value" ...]
--
-- MODE "webhook": lines are `signature<TAB>body`, POSTed to /webhook with X-Hub-Signature-256.
-- MODE "request": lines are `METHOD<TAB>PATH<TAB>BODY` (BODY may be empty, else JSON).
-- done() prints one line, `BENCH_RESULT {json}`, which bench/wrk.py reads.

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   table.insert(threads, thread)
   next_id = next_id + 1
end

local function split_tab(line, from)
   local tab = line:find("\t", from, true)
   if not tab then
      return line:sub(from), nil
   end
   return line:sub(from, tab - 1), tab + 1
end

function init(args)
   local file, mode, thread_count = args[1], args[2], tonumber(args[3])
   local extra = {}
   for index = 4, #args do
      local name, value = args[index]:match("^([^:]+):%s*(.*)$")
      extra[name] = value
   end
   pool = {}
   local line_number = 0
   for line in io.lines(file) do
      if mode ~= "webhook" or line_number % thread_count == id then
         local headers = {}
         for name, value in pairs(extra) do
            headers[name] = value
         end
         if mode == "webhook" then
            local signature, rest = split_tab(line, 1)
            headers["Content-Type"] = "application/json"
            headers["X-Hub-Signature-256"] = signature
            pool[#pool + 1] = wrk.format("POST", "/webhook", headers, line:sub(rest))
         else
            local method, rest = split_tab(line, 1)
            local path, body_start = split_tab(line, rest)
            local body = body_start and line:sub(body_start) or ""
            if body == "" then
               body = nil
            else
               headers["Content-Type"] = "application/json"
            end
            pool[#pool + 1] = wrk.format(method, path, headers, body)
         end
      end
      line_number = line_number + 1
   end
   size = #pool
   if size == 0 then
      error("pool file " .. file .. " has no line for thread " .. id)
   end
   sent = 0
   -- Threads cycling through the same lines start apart, so they do not move in lockstep.
   offset = 0
   if mode ~= "webhook" then
      offset = math.floor(size * id / thread_count)
   end
   status_2xx, status_3xx, status_4xx, status_5xx = 0, 0, 0, 0
end

function request()
   sent = sent + 1
   return pool[((offset + sent - 1) % size) + 1]
end

function response(status, headers, body)
   if status < 300 then
      status_2xx = status_2xx + 1
   elseif status < 400 then
      status_3xx = status_3xx + 1
   elseif status < 500 then
      status_4xx = status_4xx + 1
   else
      status_5xx = status_5xx + 1
   end
end

function done(summary, latency, requests)
   local totals = { sent = 0, pool = 0, used = 0, status_2xx = 0, status_3xx = 0,
                    status_4xx = 0, status_5xx = 0 }
   for _, thread in ipairs(threads) do
      local thread_sent, thread_size = thread:get("sent"), thread:get("size")
      totals.sent = totals.sent + thread_sent
      totals.pool = totals.pool + thread_size
      totals.used = totals.used + math.min(thread_sent, thread_size)
      for _, name in ipairs({ "status_2xx", "status_3xx", "status_4xx", "status_5xx" }) do
         totals[name] = totals[name] + thread:get(name)
      end
   end
   local errors = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"duration_us": %d, "requests": %d, "bytes": %d, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
         .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}, '
         .. '"sent": %d, "pool": %d, "used": %d, '
         .. '"status": {"2xx": %d, "3xx": %d, "4xx": %d, "5xx": %d}}\n',
      summary.duration, summary.requests, summary.bytes,
      errors.connect, errors.read, errors.write, errors.status, errors.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      latency.mean,
      totals.sent, totals.pool, totals.used,
      totals.status_2xx, totals.status_3xx, totals.status_4xx, totals.status_5xx))
end
