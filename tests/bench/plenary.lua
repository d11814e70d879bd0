-- wrk script for Plenary's rows: the shared request.lua's environment interface (BENCH_METHOD, BENCH_BODY,
-- BENCH_CONTENT_TYPE, BENCH_CHOICES, BENCH_MEMBERS, BENCH_CSRF) and the same BENCHJSON summary line, plus
-- signing in as many members:
--   BENCH_SESSIONS_FILE   one session token a line (seed.py writes it; line 1 is the admin's)
--   BENCH_MEMBERS         each request picks one of the first N lines at random (N=1: always the admin)
--   BENCH_SESSION_COOKIE  the session cookie's name (__Host-plenary_session behind https)
--   BENCH_CSRF            the plenary_csrf cookie, echoed as {csrf} in bodies (double submit, as a form does)
--   BENCH_HX              "1": send HX-Request: true, so Plenary answers with the htmx fragment
-- Every request also carries Sec-Fetch-Site: same-origin, as a browser's does, so the origin half of the CSRF
-- check runs on every POST.
local method = os.getenv("BENCH_METHOD") or "GET"
local body_t = os.getenv("BENCH_BODY") or ""
local ctype = os.getenv("BENCH_CONTENT_TYPE") or "application/x-www-form-urlencoded"
local csrf = os.getenv("BENCH_CSRF") or ""
local members = tonumber(os.getenv("BENCH_MEMBERS") or "1")
local cookie_name = os.getenv("BENCH_SESSION_COOKIE") or "plenary_session"
local hx = os.getenv("BENCH_HX") == "1"
local choices = {}
for c in string.gmatch(os.getenv("BENCH_CHOICES") or "1,2,3,4", "[^,]+") do
  table.insert(choices, c)
end

local tokens = {}
local path = os.getenv("BENCH_SESSIONS_FILE")
if path then
  for line in io.lines(path) do
    if line ~= "" then table.insert(tokens, line) end
  end
end
if #tokens == 0 then error("BENCH_SESSIONS_FILE has no session tokens") end
if members > #tokens then members = #tokens end

local cookies = {}
for i = 1, members do
  cookies[i] = cookie_name .. "=" .. tokens[i] .. "; plenary_csrf=" .. csrf
end

body_t = string.gsub(body_t, "{csrf}", csrf)

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0))
end

request = function()
  local headers = {["Cookie"] = cookies[math.random(1, members)], ["Sec-Fetch-Site"] = "same-origin"}
  if hx then headers["HX-Request"] = "true" end
  local b = nil
  if body_t ~= "" then
    headers["Content-Type"] = ctype
    b = string.gsub(body_t, "{choice}", choices[math.random(1, #choices)])
  end
  return wrk.format(method, nil, headers, b)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"err_connect": %d, "err_read": %d, "err_write": %d, "err_status": %d, "err_timeout": %d, ' ..
    '"lat_mean_us": %.1f, "lat_max_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
