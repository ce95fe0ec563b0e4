-- Shared by attempt.lua and finish_job.lua (spliced in where they say `--#include`):
-- an open upstream call record and how it counts as lost in flight.
-- Record: "<attempt id>\t<owner>\t<expires ms>\t<prompt>\t<completion>\t<nano-USD>\t<prefix>"
local function parse_open_call(record)
  return string.match(record, '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$')
end

-- Adds one lost call (its estimated tokens and cost) to the day and hour usage hashes.
local function count_lost_call(record, day_key, hour_key, ttl)
  local _, _, _, prompt, completion, cost, prefix = parse_open_call(record)
  if not prefix then return 0 end
  for _, key in ipairs({day_key, hour_key}) do
    redis.call('HINCRBY', key, prefix .. 'lost_requests', 1)
    redis.call('HINCRBY', key, prefix .. 'lost_prompt_tokens', tonumber(prompt))
    redis.call('HINCRBY', key, prefix .. 'lost_completion_tokens', tonumber(completion))
    redis.call('HINCRBY', key, prefix .. 'lost_cost_nanousd', tonumber(cost))
    redis.call('EXPIRE', key, ttl)
  end
  return 1
end
