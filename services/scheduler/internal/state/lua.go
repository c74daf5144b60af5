package state

import (
	"fmt"
	"sort"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Every script starts with the prelude below. The scripts build their key
// names from {P} (ARGV[1]) exactly as libs/keys does (a test checks it): the
// runner a result names tells which group's sets to touch, so the keys cannot
// all be declared up front. Every key carries the hash tag {P}; Redis Cluster
// is not a goal (docs/design.md §3).
//
// Common ARGV of every script:
//
//	ARGV[1] {P}   ARGV[2] now (ms since epoch)   ARGV[3] MAXLEN ~ of the command streams
//
// A "group block" at ARGV[i] is: name, backend, min_runners, max_runners, n,
// then n candidates of four values each: runner name, for_job, command data,
// traceparent.
//
// The "#!lua" shebang (Redis 7) makes Redis refuse a writing script before it
// starts when memory is full, instead of failing half-way through it.
const preludeBody = `
local P = ARGV[1]
local NOW = ARGV[2]
local MAXLEN = ARGV[3]
local RETRY = P .. ':retry'
local FREE = {pending = true, started = true, idle = true}
local RANK = {queued = 1, in_progress = 2, completed = 3}

local function rkey(name) return P .. ':runner:' .. name end
local function gkey(g, what) return P .. ':group:' .. g .. ':' .. what end
local function jkey(id) return P .. ':job:' .. id end
local function pkey(backend) return P .. ':provision:' .. backend end

-- writable tells whether a command can be appended to stream. Checked before
-- any write, because Redis does not roll back a script that fails half-way.
local function writable(stream)
  local t = redis.call('TYPE', stream)['ok']
  return t == 'stream' or t == 'none'
end

local function emit(stream, data, tp)
  return redis.call('XADD', stream, 'MAXLEN', '~', MAXLEN, '*',
    'type', 'command', 'data', data, 'traceparent', tp)
end

-- setstate moves a runner along the state machine (ALLOWED) and keeps the
-- group's free set in step. False when the move is not allowed.
local function setstate(name, to)
  local k = rkey(name)
  local from = redis.call('HGET', k, 'state')
  if not from or not ALLOWED[from] or not ALLOWED[from][to] then return false end
  local g = redis.call('HGET', k, 'group')
  redis.call('HSET', k, 'state', to, 'state_since', NOW, 'updated_at', NOW)
  if FREE[to] then
    redis.call('ZADD', gkey(g, 'free'), redis.call('HGET', k, 'created_at'), name)
  else
    redis.call('ZREM', gkey(g, 'free'), name)
  end
  return true
end

-- remove drops a runner's record and releases its capacity; returns its group or false.
local function remove(name)
  local k = rkey(name)
  local g = redis.call('HGET', k, 'group')
  if not g then return false end
  redis.call('DEL', k)
  redis.call('ZREM', gkey(g, 'runners'), name)
  redis.call('ZREM', gkey(g, 'free'), name)
  redis.call('ZREM', RETRY, 'create:' .. name, 'delete:' .. name)
  return g
end

local function readgroup(i)
  local g = {name = ARGV[i], backend = ARGV[i + 1], min = tonumber(ARGV[i + 2]),
    max = tonumber(ARGV[i + 3]), cands = {}}
  local n = tonumber(ARGV[i + 4])
  local j = i + 5
  for c = 1, n do
    g.cands[c] = {name = ARGV[j], forjob = ARGV[j + 1], data = ARGV[j + 2], tp = ARGV[j + 3]}
    j = j + 4
  end
  return g
end

-- guard fails the script before any write when g's command stream is not a stream.
local function guard(g)
  if g.max > 0 and not writable(pkey(g.backend)) then
    return redis.error_reply('WRONGTYPE command stream ' .. pkey(g.backend) .. ' is not a stream')
  end
  return nil
end

-- topup reserves runners of g while free < min_runners + |demand| and
-- total < max_runners: record (pending), runners and free sets, and the create
-- command, together. Returns the names reserved and 1 when candidates ran out
-- before the group was satisfied.
local function topup(g)
  local reserved = {}
  if g.name == '' or g.max <= 0 then return reserved, 0 end
  if redis.call('EXISTS', gkey(g.name, 'backoff')) == 1 then return reserved, 0 end
  local runners, free = gkey(g.name, 'runners'), gkey(g.name, 'free')
  local wanted = g.min + redis.call('ZCARD', gkey(g.name, 'demand'))
  local nfree = redis.call('ZCARD', free)
  local total = redis.call('ZCARD', runners)
  local i = 1
  while nfree < wanted and total < g.max do
    local c = g.cands[i]
    if not c then return reserved, 1 end
    i = i + 1
    local k = rkey(c.name)
    if redis.call('EXISTS', k) == 0 then
      emit(pkey(g.backend), c.data, c.tp)
      redis.call('HSET', k, 'group', g.name, 'backend', g.backend, 'state', 'pending',
        'job_id', '0', 'for_job', c.forjob, 'instance_id', '', 'github_runner_id', '0',
        'attempt', '1', 'created_at', NOW, 'updated_at', NOW, 'state_since', NOW)
      redis.call('ZADD', runners, NOW, c.name)
      redis.call('ZADD', free, NOW, c.name)
      nfree = nfree + 1
      total = total + 1
      reserved[#reserved + 1] = c.name
    end
  end
  return reserved, 0
end
`

// allowedTable renders the state machine as the Lua table ALLOWED.
func allowedTable() string {
	var b strings.Builder
	b.WriteString("local ALLOWED = {\n")
	for _, s := range States() {
		to := make([]string, 0, len(transitions[s]))
		for _, t := range transitions[s] {
			to = append(to, string(t)+" = true")
		}
		sort.Strings(to)
		fmt.Fprintf(&b, "  %s = {%s},\n", s, strings.Join(to, ", "))
	}
	b.WriteString("}\n")
	return b.String()
}

func newScript(body string) *redis.Script {
	return redis.NewScript("#!lua\n" + allowedTable() + preludeBody + body)
}

// Queued: ARGV[4] job id, ARGV[5] queued_at, ARGV[6] TTL of an active job (ms),
// ARGV[7] k, then k group blocks: the job's candidate groups in order of
// preference. The job is counted in the first that has room for it (a free
// runner not claimed by its demand, or fewer runners than max_runners out of
// create backoff), else in the first. A known job (any status) changes
// nothing. Returns {applied, reserved, short, index of the group (1-based)}.
var scriptQueued = newScript(`
local k = tonumber(ARGV[7])
local gs = {}
local i = 8
for c = 1, k do
  gs[c] = readgroup(i)
  i = i + 5 + 4 * #gs[c].cands
end
for c = 1, k do
  local err = guard(gs[c])
  if err then return err end
end
local jk = jkey(ARGV[4])
if redis.call('EXISTS', jk) == 1 then return {0, {}, 0, 1} end
local pick = 1
for c = 1, k do
  local g = gs[c]
  if g.name ~= '' and g.max > 0 then
    local nfree = redis.call('ZCARD', gkey(g.name, 'free'))
    local ndemand = redis.call('ZCARD', gkey(g.name, 'demand'))
    local total = redis.call('ZCARD', gkey(g.name, 'runners'))
    if nfree > ndemand or (total < g.max and redis.call('EXISTS', gkey(g.name, 'backoff')) == 0) then
      pick = c
      break
    end
  end
end
local g = gs[pick]
redis.call('HSET', jk, 'status', 'queued', 'group', g.name, 'queued_at', ARGV[5])
redis.call('PEXPIRE', jk, ARGV[6])
redis.call('ZADD', gkey(g.name, 'demand'), ARGV[5], ARGV[4])
local reserved, short = topup(g)
return {1, reserved, short, pick}
`)

// InProgress: ARGV[4] job id, ARGV[5] in_progress_at, ARGV[6] runner name,
// ARGV[7] TTL of an active job (ms), group block at 8.
// Returns {applied, reserved, short, queued_at, ours}.
var scriptInProgress = newScript(`
local g = readgroup(8)
local err = guard(g)
if err then return err end
local job, rn = ARGV[4], ARGV[6]
local jk = jkey(job)
local st = redis.call('HGET', jk, 'status')
if st and RANK[st] and RANK[st] >= 2 then return {0, {}, 0, '', 0} end
local jg = redis.call('HGET', jk, 'group')
if not jg or jg == '' then jg = g.name end
redis.call('HSET', jk, 'status', 'in_progress', 'group', jg, 'in_progress_at', ARGV[5], 'runner_name', rn)
redis.call('PEXPIRE', jk, ARGV[7])
if jg ~= '' then redis.call('ZREM', gkey(jg, 'demand'), job) end
if g.name ~= '' and g.name ~= jg then redis.call('ZREM', gkey(g.name, 'demand'), job) end
local qa = redis.call('HGET', jk, 'queued_at') or ''
local ours = 0
if rn ~= '' and redis.call('EXISTS', rkey(rn)) == 1 then
  ours = 1
  -- Only the provisioner's busy result takes a deleting runner back to busy:
  -- until then its delete command is in flight.
  if redis.call('HGET', rkey(rn), 'state') ~= 'deleting' then setstate(rn, 'busy') end
  redis.call('HSET', rkey(rn), 'job_id', job, 'updated_at', NOW)
end
local reserved, short = topup(g)
return {1, reserved, short, qa, ours}
`)

// Completed: ARGV[4] job id, ARGV[5] completed_at, ARGV[6] runner name,
// ARGV[7] retention (ms), ARGV[8] delete command data (empty when none),
// ARGV[9] its traceparent, ARGV[10] the runner's backend, group block at 11.
// Returns {applied, reserved, short, runner moved to deleting or empty}.
var scriptCompleted = newScript(`
local g = readgroup(11)
local err = guard(g)
if err then return err end
local job, rn = ARGV[4], ARGV[6]
local del = rn ~= '' and ARGV[8] ~= ''
if del and not writable(pkey(ARGV[10])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[10]) .. ' is not a stream')
end
local jk = jkey(job)
local st = redis.call('HGET', jk, 'status')
if st == 'completed' then return {0, {}, 0, ''} end
local jg = redis.call('HGET', jk, 'group')
if not jg or jg == '' then jg = g.name end
redis.call('HSET', jk, 'status', 'completed', 'group', jg, 'completed_at', ARGV[5])
if rn ~= '' then redis.call('HSET', jk, 'runner_name', rn) end
redis.call('PEXPIRE', jk, ARGV[7])
if jg ~= '' then redis.call('ZREM', gkey(jg, 'demand'), job) end
if g.name ~= '' and g.name ~= jg then redis.call('ZREM', gkey(g.name, 'demand'), job) end
local deleting = ''
if del and redis.call('EXISTS', rkey(rn)) == 1 and setstate(rn, 'deleting') then
  emit(pkey(ARGV[10]), ARGV[8], ARGV[9])
  redis.call('ZREM', RETRY, 'create:' .. rn)
  deleting = rn
end
local reserved, short = topup(g)
return {1, reserved, short, deleting}
`)

// Created: ARGV[4] runner, ARGV[5] instance id, ARGV[6] GitHub runner id,
// ARGV[7] delete command data, ARGV[8] its traceparent, ARGV[9] backend,
// ARGV[10] organization, ARGV[11] repository, ARGV[12] location (JSON, empty
// for none). Returns {code, previous state}: 0 no record (delete emitted), 1 recorded,
// 2 the runner is deleting (delete emitted again: the first one may have
// raced with the create).
var scriptCreated = newScript(`
local name = ARGV[4]
if not writable(pkey(ARGV[9])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[9]) .. ' is not a stream')
end
local k = rkey(name)
local s = redis.call('HGET', k, 'state')
if not s then
  emit(pkey(ARGV[9]), ARGV[7], ARGV[8])
  return {0, ''}
end
if ARGV[5] ~= '' then redis.call('HSET', k, 'instance_id', ARGV[5]) end
if ARGV[6] ~= '' and ARGV[6] ~= '0' then redis.call('HSET', k, 'github_runner_id', ARGV[6]) end
if ARGV[10] ~= '' then redis.call('HSET', k, 'organization', ARGV[10], 'repository', ARGV[11]) end
if ARGV[12] ~= '' then redis.call('HSET', k, 'location', ARGV[12]) end
redis.call('HSET', k, 'updated_at', NOW)
redis.call('ZREM', RETRY, 'create:' .. name)
if s == 'pending' then
  -- The group's creates work: its failed rounds and their backoff end.
  local g = redis.call('HGET', k, 'group')
  redis.call('DEL', gkey(g, 'create_failures'), gkey(g, 'backoff'))
  setstate(name, 'started')
elseif s == 'deleting' then
  emit(pkey(ARGV[9]), ARGV[7], ARGV[8])
  return {2, s}
end
return {1, s}
`)

// Deleted: ARGV[4] runner, group block at 5. Removes the record, then tops up.
// Returns {removed, reserved, short}.
var scriptDeleted = newScript(`
local g = readgroup(5)
local err = guard(g)
if err then return err end
local removed = 0
if remove(ARGV[4]) then removed = 1 end
local reserved, short = topup(g)
return {removed, reserved, short}
`)

// CreateFailed: ARGV[4] runner, ARGV[5] attempt that failed, ARGV[6] "retry"
// or "release", ARGV[7] retry due time (ms), ARGV[8] first group backoff (ms,
// 0 none), ARGV[9] longest group backoff (ms), ARGV[10] TTL of the failure
// count (ms), ARGV[11] delete command data (reason create_failed), ARGV[12]
// its traceparent, ARGV[13] backend.
// Only a pending runner at that attempt is touched (a stale failure is ignored).
// A release moves the runner to deleting and emits its delete (its instance
// may exist: a create that timed out, a command dead-lettered mid-way); it
// keeps counting against max_runners until its deleted result.
// A release while the group is not in backoff starts a new failed round: the
// group's count of consecutive failed rounds grows and the group backs off
// ARGV[8] doubled per earlier round, at most ARGV[9]. The other failures of the
// same round (the creates reserved together) find the backoff there and leave
// it. Returns {code, state, backoff ms}: 0 ignored, 1 retry scheduled, 2 released.
var scriptCreateFailed = newScript(`
local name = ARGV[4]
local k = rkey(name)
local s = redis.call('HGET', k, 'state')
if s ~= 'pending' or redis.call('HGET', k, 'attempt') ~= ARGV[5] then return {0, s or ''} end
if ARGV[6] == 'retry' then
  redis.call('ZADD', RETRY, ARGV[7], 'create:' .. name)
  redis.call('HSET', k, 'updated_at', NOW)
  return {1, s}
end
if not writable(pkey(ARGV[13])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[13]) .. ' is not a stream')
end
local g = redis.call('HGET', k, 'group')
if not setstate(name, 'deleting') then return {0, s} end
redis.call('ZREM', RETRY, 'create:' .. name)
emit(pkey(ARGV[13]), ARGV[11], ARGV[12])
local base = tonumber(ARGV[8])
if g and base > 0 then
  local bk = gkey(g, 'backoff')
  local left = redis.call('PTTL', bk)
  if left > 0 then return {2, s, left} end
  local fk = gkey(g, 'create_failures')
  local n = redis.call('INCR', fk)
  redis.call('PEXPIRE', fk, ARGV[10])
  local d = base
  local cap = tonumber(ARGV[9])
  for i = 2, n do
    if d >= cap then break end
    d = d * 2
  end
  if d > cap then d = cap end
  redis.call('SET', bk, NOW, 'PX', d)
  return {2, s, d}
end
return {2, s, 0}
`)

// DeleteFailed: ARGV[4] runner, ARGV[5] retry due time (ms). Returns 1 when a
// retry was scheduled (the runner is deleting), 0 otherwise.
// ARGV[6] the failure's reason. Counts the failure in the record
// (delete_failures, delete_error). Returns the failures so far, 0 when the
// runner has no record or is not deleting.
var scriptDeleteFailed = newScript(`
local k = rkey(ARGV[4])
if redis.call('HGET', k, 'state') ~= 'deleting' then return 0 end
redis.call('ZADD', RETRY, ARGV[5], 'delete:' .. ARGV[4])
redis.call('HSET', k, 'delete_error', ARGV[6])
return redis.call('HINCRBY', k, 'delete_failures', 1)
`)

// RetryCreate: ARGV[4] runner, ARGV[5] attempt it is at, ARGV[6] command data
// (attempt+1), ARGV[7] traceparent, ARGV[8] backend. Claims the retry entry
// (ZREM) so that it is emitted once. Returns 1 when emitted.
var scriptRetryCreate = newScript(`
local name = ARGV[4]
if not writable(pkey(ARGV[8])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[8]) .. ' is not a stream')
end
if redis.call('ZREM', RETRY, 'create:' .. name) == 0 then return 0 end
local k = rkey(name)
if redis.call('HGET', k, 'state') ~= 'pending' or redis.call('HGET', k, 'attempt') ~= ARGV[5] then return 0 end
emit(pkey(ARGV[8]), ARGV[6], ARGV[7])
redis.call('HSET', k, 'attempt', tonumber(ARGV[5]) + 1, 'updated_at', NOW)
return 1
`)

// RetryDelete: ARGV[4] runner, ARGV[5] command data, ARGV[6] traceparent,
// ARGV[7] backend. Returns 1 when emitted.
var scriptRetryDelete = newScript(`
local name = ARGV[4]
if not writable(pkey(ARGV[7])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[7]) .. ' is not a stream')
end
if redis.call('ZREM', RETRY, 'delete:' .. name) == 0 then return 0 end
if redis.call('HGET', rkey(name), 'state') ~= 'deleting' then return 0 end
emit(pkey(ARGV[7]), ARGV[5], ARGV[6])
redis.call('HSET', rkey(name), 'updated_at', NOW)
return 1
`)

// RequestDelete: ARGV[4] runner, ARGV[5] accepted states as ",a,b,",
// ARGV[6] command data, ARGV[7] traceparent, ARGV[8] backend.
// Returns {moved, state before}.
var scriptRequestDelete = newScript(`
local name = ARGV[4]
if not writable(pkey(ARGV[8])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[8]) .. ' is not a stream')
end
local s = redis.call('HGET', rkey(name), 'state')
if not s then return {0, ''} end
if not string.find(ARGV[5], ',' .. s .. ',', 1, true) then return {0, s} end
if not setstate(name, 'deleting') then return {0, s} end
emit(pkey(ARGV[8]), ARGV[6], ARGV[7])
redis.call('ZREM', RETRY, 'create:' .. name)
return {1, s}
`)

// Busy: ARGV[4] runner, ARGV[5] delete command data (job_completed, the
// registration gone), ARGV[6] traceparent, ARGV[7] backend.
// A busy result: GitHub refused to remove the registration of a deleting
// runner because it runs a job, and the provisioner kept its instance. The
// runner moves deleting -> busy (compare-and-set) and its pending delete
// retry is dropped; when its job (job_id) is completed already, that job's
// completed event found the runner deleting and emitted nothing, so the
// runner stays deleting and the delete of a finished job is emitted.
// Returns {code, state before}: 0 not deleting (nothing done), 1 busy,
// 2 job already completed (delete emitted).
var scriptBusy = newScript(`
local name = ARGV[4]
if not writable(pkey(ARGV[7])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[7]) .. ' is not a stream')
end
local k = rkey(name)
local s = redis.call('HGET', k, 'state')
if s ~= 'deleting' then return {0, s or ''} end
redis.call('ZREM', RETRY, 'delete:' .. name)
local job = redis.call('HGET', k, 'job_id') or '0'
if job ~= '0' and job ~= '' and redis.call('HGET', jkey(job), 'status') == 'completed' then
  emit(pkey(ARGV[7]), ARGV[5], ARGV[6])
  redis.call('HSET', k, 'updated_at', NOW)
  return {2, s}
end
if not setstate(name, 'busy') then return {0, s} end
return {1, s}
`)

// MarkIdle: ARGV[4] runner. pending or started -> idle. Returns {moved, state before}.
var scriptMarkIdle = newScript(`
local name = ARGV[4]
local s = redis.call('HGET', rkey(name), 'state')
if not s then return {0, ''} end
if (s == 'pending' or s == 'started') and setstate(name, 'idle') then return {1, s} end
return {0, s}
`)

// TopUp: group block at 4. Returns {1, reserved, short}.
var scriptTopUp = newScript(`
local g = readgroup(4)
local err = guard(g)
if err then return err end
local reserved, short = topup(g)
return {1, reserved, short}
`)
