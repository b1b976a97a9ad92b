-- server_post.lua — wrk script for bench/server_load.sh: every request POSTs a small completion
-- (8 tokens at temperature 0) to infer-server's /v1/completions; counts answers by HTTP status
-- and prints requests/s and latency percentiles at the end, in lines the script can grep.
-- Environment: SERVER_MODEL (default "stories"), SERVER_MAX_TOKENS (default 8).

local model = os.getenv("SERVER_MODEL") or "stories"
local max_tokens = tonumber(os.getenv("SERVER_MAX_TOKENS") or "8")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"model":"%s","prompt":"Once upon a time","max_tokens":%d,"temperature":0}',
                         model, max_tokens)

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    statuses = {}
end

function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
    local total = {}
    for _, t in ipairs(threads) do
        for code, n in pairs(t:get("statuses")) do
            total[code] = (total[code] or 0) + n
        end
    end
    local secs = summary.duration / 1e6
    io.write(string.format("result: requests %d in %.2f s\n", summary.requests, secs))
    io.write(string.format("result: requests/s %.1f\n", summary.requests / secs))
    for _, p in ipairs({ 50, 90, 99 }) do
        io.write(string.format("result: p%d_ms %.2f\n", p, latency:percentile(p) / 1000))
    end
    io.write(string.format("result: max_ms %.2f\n", latency.max / 1000))
    for code, n in pairs(total) do
        io.write(string.format("result: status %d %d\n", code, n))
    end
    local e = summary.errors
    io.write(string.format("result: socket_errors connect %d read %d write %d timeout %d\n",
                           e.connect, e.read, e.write, e.timeout))
end
