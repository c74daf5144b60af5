package state

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/stream"

	"github.com/runner-manager/runner-manager/services/scheduler/internal/usage"
)

// Every script starts with the prelude below. Key names come from libs/keys:
// the functions rkey, jkey, pkey, gkey and the health keys' are rendered from
// its shapes (keys.Split) for the Store's manager, so a Store runs its own
// copy of each script (script.on). The keys cannot all be passed in KEYS: the
// runner a result names tells which group's sets to touch, and the script
// reads that group. Every key carries the hash tag {P}, so every key of a
// script is in one slot; Redis Cluster is not a goal (docs/design.md §3).
//
// Common ARGV of every script (Store.header):
//
//	ARGV[1] now (ms since epoch)   ARGV[2] MAXLEN ~ of the command streams
//	ARGV[3..5] the field names of a stream entry (libs/stream: type, data, traceparent)
//
// The type of the entries they emit, TCOMMAND, is stream.TypeCommand.
//
// A "group block" at ARGV[i] is: name, backend, min_runners, max_runners, n,
// then n candidates of four values each: runner name, for_job, command data,
// traceparent.
//
// The "#!lua" shebang (Redis 7) makes Redis refuse a writing script before it
// starts when memory is full, instead of failing half-way through it.
const preludeBody = `
local NOW = ARGV[1]
local MAXLEN = ARGV[2]
local FTYPE, FDATA, FTRACEPARENT = ARGV[3], ARGV[4], ARGV[5]
local FREE = {pending = true, started = true, idle = true}
local RANK = {queued = 1, in_progress = 2, completed = 3}

local function gkey(g, what) return GKEY[what](g) end

-- writable tells whether a command can be appended to stream. Checked before
-- any write, because Redis does not roll back a script that fails half-way.
local function writable(stream)
  local t = redis.call('TYPE', stream)['ok']
  return t == 'stream' or t == 'none'
end

-- Usage (services/scheduler/internal/usage): uadd adds one observation to
-- the bucket of NOW and to USAGE, which the usage-recording scripts return
-- (flat: kind, group, repository, workflow, ms) for the Prometheus metrics.
-- UCTX, while set, is the job a runner leaves its free time for.
local USAGE = {}
local UCTX = {}

local function uidx(v)
  for i, b in ipairs(UBOUNDS) do
    if v <= b then return i - 1 end
  end
  return #UBOUNDS
end

local function uadd(kind, g, repo, wf, v)
  if not g or g == '' then return end
  local now = tonumber(NOW)
  local start = now - now % UBUCKET
  local k = ukey(string.format('%d', start / 1000))
  local sid = g .. '\t' .. repo .. '\t' .. wf
  if redis.call('HEXISTS', k, 's\t' .. sid) == 0 then
    if tonumber(redis.call('HGET', k, 'n') or '0') >= UMAXSERIES then
      repo, wf = 'other', 'other'
      sid = g .. '\t' .. repo .. '\t' .. wf
    end
    if redis.call('HSETNX', k, 's\t' .. sid, '1') == 1 then redis.call('HINCRBY', k, 'n', 1) end
  end
  local function bump(what, n) redis.call('HINCRBY', k, what .. '\t' .. sid, n) end
  if kind == 'busy' then
    bump('busy', v)
  elseif kind == 'idle' then
    bump('idle', v)
    bump('runners', 1)
  elseif kind == 'boot' then
    bump('bootn', 1)
    bump('boot', v)
    bump('boot.' .. uidx(v), 1)
  elseif kind == 'job' then
    bump('jobs', 1)
    if v >= 0 then
      bump('waitn', 1)
      bump('wait', v)
      bump('wait.' .. uidx(v), 1)
    end
  end
  -- Relative to NOW (the scheduler's clock), not to Redis' own.
  redis.call('PEXPIRE', k, start + URETAIN - now)
  local n = #USAGE
  USAGE[n + 1], USAGE[n + 2], USAGE[n + 3], USAGE[n + 4], USAGE[n + 5] = kind, g, repo, wf, string.format('%d', v)
end

-- runnerexit counts the free time of a runner of group g that ends now
-- (it takes a job, goes deleting, or its record is removed): idle from its
-- creation, and its boot time (to online_at, or to now when it takes a job
-- without having been seen online). The job's series when UCTX is set,
-- else repository and workflow "" (never used).
local function runnerexit(k, g, to)
  local created = tonumber(redis.call('HGET', k, 'created_at') or '')
  if not created then return end
  local at = tonumber(NOW)
  local repo, wf = '', ''
  if UCTX.repo then
    repo, wf = UCTX.repo, UCTX.wf
    if UCTX.at and UCTX.at >= created and UCTX.at < at then at = UCTX.at end
  end
  uadd('idle', g, repo, wf, at - created)
  local online = tonumber(redis.call('HGET', k, 'online_at') or '')
  if online then
    uadd('boot', g, repo, wf, math.max(0, online - created))
  elseif to == 'busy' then
    uadd('boot', g, repo, wf, at - created)
  end
end

-- setwhere records where a job runs (owner, repository) in its record, for
-- the health checks that look the job up at GitHub; nothing when unknown.
local function setwhere(jk, owner, repo)
  if owner ~= '' and repo ~= '' then redis.call('HSET', jk, 'owner', owner, 'repository', repo) end
end

local function emit(stream, data, tp)
  return redis.call('XADD', stream, 'MAXLEN', '~', MAXLEN, '*',
    FTYPE, TCOMMAND, FDATA, data, FTRACEPARENT, tp)
end

-- setstate moves a runner along the state machine (ALLOWED) and keeps the
-- group's free set in step; a runner that leaves its free time has it
-- counted (runnerexit), one that comes online has online_at. False when
-- the move is not allowed.
local function setstate(name, to)
  local k = rkey(name)
  local from = redis.call('HGET', k, 'state')
  if not from or not ALLOWED[from] or not ALLOWED[from][to] then return false end
  local g = redis.call('HGET', k, 'group')
  if FREE[from] and not FREE[to] then runnerexit(k, g, to) end
  if to == 'idle' and from ~= 'idle' then redis.call('HSET', k, 'online_at', NOW) end
  redis.call('HSET', k, 'state', to, 'state_since', NOW, 'updated_at', NOW)
  if FREE[to] then
    redis.call('ZADD', gkey(g, 'free'), redis.call('HGET', k, 'created_at'), name)
  else
    redis.call('ZREM', gkey(g, 'free'), name)
  end
  return true
end

-- remove drops a runner's record and releases its capacity (a free runner
-- has its free time counted); returns its group or false.
local function remove(name)
  local k = rkey(name)
  local g = redis.call('HGET', k, 'group')
  if not g then return false end
  if FREE[redis.call('HGET', k, 'state')] then runnerexit(k, g, 'gone') end
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
-- total < max_runners, unless the group is in create backoff or paused or
-- draining (its mode key exists): record (pending), runners and free sets, and
-- the create command, together. Returns the names reserved and 1 when candidates ran out
-- before the group was satisfied.
local function topup(g)
  local reserved = {}
  if g.name == '' or g.max <= 0 then return reserved, 0 end
  if redis.call('EXISTS', gkey(g.name, 'backoff')) == 1 then return reserved, 0 end
  -- A paused or draining group gets no new runner (its demand waits).
  if HELD[redis.call('GET', gkey(g.name, 'mode'))] then return reserved, 0 end
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

// modesTable renders the modes under which a group gets no new runner as the
// Lua table HELD (by the value of its mode key), and DRAINING.
func modesTable() string {
	return fmt.Sprintf("local HELD = {%s = true, %s = true}\nlocal DRAINING = %q\n", ModePaused, ModeDraining, ModeDraining)
}

// usageTable renders the usage bucket layout (package usage) as Lua locals.
func usageTable() string {
	return fmt.Sprintf("local UBUCKET = %d\nlocal URETAIN = %d\nlocal UMAXSERIES = %d\nlocal UBOUNDS = %s\n",
		usage.Bucket.Milliseconds(), (usage.Retention + usage.Bucket).Milliseconds(), usage.MaxSeries, usage.LuaBounds())
}

// keysTable renders the key names of k that the scripts build as Lua
// functions and locals (see the prelude).
func keysTable(k keys.Keys) string {
	var b strings.Builder
	fn := func(name, before, after string) {
		fmt.Fprintf(&b, "local function %s(x) return %s .. x .. %s end\n", name, luaString(before), luaString(after))
	}
	for _, f := range []struct {
		name string
		key  func(string) string
	}{
		{"rkey", k.Runner}, {"pkey", k.Provision}, {"horphan", k.HealthOrphan}, {"hlisted", k.HealthListed},
		{"hlist", k.HealthList}, {"hghorphans", k.HealthGitHubOrphans}, {"habsent", k.HealthAbsent},
	} {
		before, after := keys.Split(f.key)
		fn(f.name, before, after)
	}
	// Job ids and bucket starts come to the scripts as decimal strings.
	before, after := keys.SplitID(k.Job)
	fn("jkey", before, after)
	before, after = keys.SplitID(k.Usage)
	fn("ukey", before, after)
	fmt.Fprintf(&b, "local RETRY = %s\n", luaString(k.Retry()))
	b.WriteString("local GKEY = {\n")
	for _, g := range []struct {
		what string
		key  func(string) string
	}{
		{"runners", k.GroupRunners}, {"demand", k.GroupDemand}, {"free", k.GroupFree},
		{"backoff", k.GroupBackoff}, {"create_failures", k.GroupCreateFailures}, {"mode", k.GroupMode},
	} {
		before, after := keys.Split(g.key)
		fmt.Fprintf(&b, "  %s = function(x) return %s .. x .. %s end,\n", g.what, luaString(before), luaString(after))
	}
	b.WriteString("}\n")
	return b.String()
}

// luaString quotes s as a Lua string literal (Lua 5.1 reads the escapes of
// Go's %q but \x: bytes outside printable ASCII are written in decimal).
func luaString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// script is the body of one Lua script; on renders it for a manager's keys.
type script struct {
	body  string
	cache sync.Map // {P} -> *redis.Script
}

func newScript(body string) *script { return &script{body: body} }

// on returns the script rendered for the keys k (once per manager).
func (sc *script) on(k keys.Keys) *redis.Script {
	if v, ok := sc.cache.Load(k.Prefix()); ok {
		return v.(*redis.Script)
	}
	v, _ := sc.cache.LoadOrStore(k.Prefix(), redis.NewScript("#!lua\n"+allowedTable()+modesTable()+usageTable()+
		keysTable(k)+fmt.Sprintf("local TCOMMAND = %s\n", luaString(stream.TypeCommand))+preludeBody+sc.body))
	return v.(*redis.Script)
}

// Queued: ARGV[6] job id, ARGV[7] queued_at, ARGV[8] TTL of an active job (ms),
// ARGV[9] owner, ARGV[10] repository (where the job runs, recorded in the
// job's record, known or not; empty: unknown),
// ARGV[11] k, then k group blocks: the job's candidate groups in order of
// preference. The job is counted in the first that has room for it (a free
// runner not claimed by its demand, or fewer runners than max_runners out of
// create backoff and not paused; a draining group has no room), else in the
// first. A known job (any status) changes
// nothing. Returns {applied, reserved, short, index of the group (1-based)}.
var scriptQueued = newScript(`
local k = tonumber(ARGV[11])
local gs = {}
local i = 12
for c = 1, k do
  gs[c] = readgroup(i)
  i = i + 5 + 4 * #gs[c].cands
end
for c = 1, k do
  local err = guard(gs[c])
  if err then return err end
end
local jk = jkey(ARGV[6])
if redis.call('EXISTS', jk) == 1 then
  setwhere(jk, ARGV[9], ARGV[10])
  return {0, {}, 0, 1}
end
local pick = 1
for c = 1, k do
  local g = gs[c]
  if g.name ~= '' and g.max > 0 then
    local nfree = redis.call('ZCARD', gkey(g.name, 'free'))
    local ndemand = redis.call('ZCARD', gkey(g.name, 'demand'))
    local total = redis.call('ZCARD', gkey(g.name, 'runners'))
    local mode = redis.call('GET', gkey(g.name, 'mode'))
    local grow = total < g.max and not HELD[mode] and redis.call('EXISTS', gkey(g.name, 'backoff')) == 0
    if mode ~= DRAINING and (nfree > ndemand or grow) then
      pick = c
      break
    end
  end
end
local g = gs[pick]
redis.call('HSET', jk, 'status', 'queued', 'group', g.name, 'queued_at', ARGV[7])
setwhere(jk, ARGV[9], ARGV[10])
redis.call('PEXPIRE', jk, ARGV[8])
redis.call('ZADD', gkey(g.name, 'demand'), ARGV[7], ARGV[6])
local reserved, short = topup(g)
return {1, reserved, short, pick}
`)

// InProgress: ARGV[6] job id, ARGV[7] in_progress_at, ARGV[8] runner name,
// ARGV[9] TTL of an active job (ms), ARGV[10] run id, ARGV[11] repository
// (owner/name), ARGV[12] workflow, ARGV[13] the runner's UpdateRunner
// command data (empty when none), ARGV[14] its traceparent, ARGV[15] the
// runner's backend, ARGV[16] the event's created_at (ms; the wait's start
// when the job has no queued_at), ARGV[17] owner, ARGV[18] repository (where
// the job runs, recorded in the job's record even when the event is old;
// empty: unknown), group block at 19.
// The job's metadata goes into our runner's record. The update command is
// emitted at most once per job: a job already in progress returns before
// anything, a runner that already has the job (its job record expired) or
// that is deleting gets none.
// Counts the job (and its wait) in the usage aggregate, and the free time of
// our runner that takes it.
// Returns {applied, reserved, short, queued_at, ours, update emitted, usage}.
var scriptInProgress = newScript(`
local g = readgroup(19)
local err = guard(g)
if err then return err end
local job, rn = ARGV[6], ARGV[8]
local upd = rn ~= '' and ARGV[13] ~= ''
if upd and not writable(pkey(ARGV[15])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[15]) .. ' is not a stream')
end
local jk = jkey(job)
local st = redis.call('HGET', jk, 'status')
if st and RANK[st] and RANK[st] >= 2 then
  setwhere(jk, ARGV[17], ARGV[18])
  return {0, {}, 0, '', 0, 0, USAGE}
end
local jg = redis.call('HGET', jk, 'group')
if not jg or jg == '' then jg = g.name end
local repo, wf = ARGV[11], ARGV[12]
if repo == '' then repo = redis.call('HGET', jk, 'usage_repository') or '' end
if wf == '' then wf = redis.call('HGET', jk, 'workflow') or '' end
redis.call('HSET', jk, 'status', 'in_progress', 'group', jg, 'in_progress_at', ARGV[7], 'runner_name', rn,
  'usage_repository', repo, 'workflow', wf)
setwhere(jk, ARGV[17], ARGV[18])
redis.call('PEXPIRE', jk, ARGV[9])
if jg ~= '' then redis.call('ZREM', gkey(jg, 'demand'), job) end
if g.name ~= '' and g.name ~= jg then redis.call('ZREM', gkey(g.name, 'demand'), job) end
local qa = redis.call('HGET', jk, 'queued_at') or ''
local at = tonumber(ARGV[7])
local q = tonumber(qa) or tonumber(ARGV[16])
local wait = -1
if q and q > 1000 then wait = math.max(0, at - q) end
uadd('job', jg, repo, wf, wait)
local ours, updated = 0, 0
if rn ~= '' and redis.call('EXISTS', rkey(rn)) == 1 then
  ours = 1
  local rk = rkey(rn)
  redis.call('HSET', jk, 'ours', '1', 'runner_group', redis.call('HGET', rk, 'group'))
  local had = redis.call('HGET', rk, 'job_id')
  -- Only the provisioner's busy result takes a deleting runner back to busy:
  -- until then its delete command is in flight.
  UCTX = {repo = repo, wf = wf, at = at}
  if redis.call('HGET', rk, 'state') ~= 'deleting' then setstate(rn, 'busy') end
  UCTX = {}
  redis.call('HSET', rk, 'job_id', job, 'job_run_id', ARGV[10], 'job_repository', repo,
    'job_workflow', wf, 'updated_at', NOW)
  if upd and had ~= job and redis.call('HGET', rk, 'state') == 'busy' then
    emit(pkey(ARGV[15]), ARGV[13], ARGV[14])
    updated = 1
  end
end
local reserved, short = topup(g)
return {1, reserved, short, qa, ours, updated, USAGE}
`)

// Completed: ARGV[6] job id, ARGV[7] completed_at, ARGV[8] runner name,
// ARGV[9] retention (ms), ARGV[10] delete command data (empty when none),
// ARGV[11] its traceparent, ARGV[12] the runner's backend, ARGV[13]
// repository, ARGV[14] workflow, ARGV[15] the event's started_at (ms, empty
// when unknown), ARGV[16] its created_at (ms), group block at 17.
// Counts the job's run as busy time when one of our runners ran it (and the
// job itself when its in_progress was never handled).
// Returns {applied, reserved, short, runner moved to deleting or empty, usage}.
var scriptCompleted = newScript(`
local g = readgroup(17)
local err = guard(g)
if err then return err end
local job, rn = ARGV[6], ARGV[8]
local del = rn ~= '' and ARGV[10] ~= ''
if del and not writable(pkey(ARGV[12])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[12]) .. ' is not a stream')
end
local jk = jkey(job)
local st = redis.call('HGET', jk, 'status')
if st == 'completed' then return {0, {}, 0, '', USAGE} end
local jg = redis.call('HGET', jk, 'group')
if not jg or jg == '' then jg = g.name end
local repo, wf = ARGV[13], ARGV[14]
if repo == '' then repo = redis.call('HGET', jk, 'usage_repository') or '' end
if wf == '' then wf = redis.call('HGET', jk, 'workflow') or '' end
local started = tonumber(redis.call('HGET', jk, 'in_progress_at') or '')
local ours = redis.call('HGET', jk, 'ours') == '1'
local rg = redis.call('HGET', jk, 'runner_group')
if st ~= 'in_progress' and rn ~= '' then
  -- The job ran, but its in_progress was never handled (lost, or late: it
  -- will be ignored): it started here.
  started = tonumber(ARGV[15])
  if started then
    local q = tonumber(redis.call('HGET', jk, 'queued_at') or '') or tonumber(ARGV[16])
    local wait = -1
    if q and q > 1000 then wait = math.max(0, started - q) end
    uadd('job', jg, repo, wf, wait)
  end
end
if rn ~= '' and redis.call('EXISTS', rkey(rn)) == 1 then
  ours = true
  rg = rg or redis.call('HGET', rkey(rn), 'group')
end
if ours and started then
  uadd('busy', rg or jg, repo, wf, math.max(0, tonumber(ARGV[7]) - started))
end
redis.call('HSET', jk, 'status', 'completed', 'group', jg, 'completed_at', ARGV[7],
  'usage_repository', repo, 'workflow', wf)
if rn ~= '' then redis.call('HSET', jk, 'runner_name', rn) end
redis.call('PEXPIRE', jk, ARGV[9])
if jg ~= '' then redis.call('ZREM', gkey(jg, 'demand'), job) end
if g.name ~= '' and g.name ~= jg then redis.call('ZREM', gkey(g.name, 'demand'), job) end
local deleting = ''
-- A runner still free ran this job (its in_progress was not handled).
UCTX = {repo = repo, wf = wf, at = started}
if del and redis.call('EXISTS', rkey(rn)) == 1 and setstate(rn, 'deleting') then
  emit(pkey(ARGV[12]), ARGV[10], ARGV[11])
  redis.call('ZREM', RETRY, 'create:' .. rn)
  deleting = rn
end
UCTX = {}
local reserved, short = topup(g)
return {1, reserved, short, deleting, USAGE}
`)

// Created: ARGV[6] runner, ARGV[7] instance id, ARGV[8] GitHub runner id,
// ARGV[9] delete command data, ARGV[10] its traceparent, ARGV[11] backend,
// ARGV[12] organization, ARGV[13] repository, ARGV[14] location (JSON, empty
// for none), ARGV[15] spec hash (empty for none). Returns {code, previous state}: 0 no record (delete emitted), 1 recorded,
// 2 the runner is deleting (delete emitted again: the first one may have
// raced with the create).
var scriptCreated = newScript(`
local name = ARGV[6]
if not writable(pkey(ARGV[11])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[11]) .. ' is not a stream')
end
local k = rkey(name)
local s = redis.call('HGET', k, 'state')
if not s then
  emit(pkey(ARGV[11]), ARGV[9], ARGV[10])
  return {0, ''}
end
if ARGV[7] ~= '' then redis.call('HSET', k, 'instance_id', ARGV[7]) end
if ARGV[8] ~= '' and ARGV[8] ~= '0' then redis.call('HSET', k, 'github_runner_id', ARGV[8]) end
if ARGV[12] ~= '' then redis.call('HSET', k, 'organization', ARGV[12], 'repository', ARGV[13]) end
if ARGV[14] ~= '' then redis.call('HSET', k, 'location', ARGV[14]) end
if ARGV[15] ~= '' then redis.call('HSET', k, 'spec_hash', ARGV[15]) end
redis.call('HSET', k, 'updated_at', NOW)
redis.call('ZREM', RETRY, 'create:' .. name)
if s == 'pending' then
  -- The group's creates work: its failed rounds and their backoff end.
  local g = redis.call('HGET', k, 'group')
  redis.call('DEL', gkey(g, 'create_failures'), gkey(g, 'backoff'))
  setstate(name, 'started')
elseif s == 'deleting' then
  emit(pkey(ARGV[11]), ARGV[9], ARGV[10])
  return {2, s}
end
return {1, s}
`)

// Deleted: ARGV[6] runner, group block at 7. Removes the record, then tops up.
// Returns {removed, reserved, short, usage}.
var scriptDeleted = newScript(`
local g = readgroup(7)
local err = guard(g)
if err then return err end
local removed = 0
if remove(ARGV[6]) then removed = 1 end
local reserved, short = topup(g)
return {removed, reserved, short, USAGE}
`)

// CreateFailed: ARGV[6] runner, ARGV[7] attempt that failed, ARGV[8] "retry"
// or "release", ARGV[9] retry due time (ms), ARGV[10] first group backoff (ms,
// 0 none), ARGV[11] longest group backoff (ms), ARGV[12] TTL of the failure
// count (ms), ARGV[13] delete command data (reason create_failed), ARGV[14]
// its traceparent, ARGV[15] backend.
// Only a pending runner at that attempt is touched (a stale failure is ignored).
// A release moves the runner to deleting and emits its delete (its instance
// may exist: a create that timed out, a command dead-lettered mid-way); it
// keeps counting against max_runners until its deleted result.
// A release while the group is not in backoff starts a new failed round: the
// group's count of consecutive failed rounds grows and the group backs off
// ARGV[10] doubled per earlier round, at most ARGV[11]. The other failures of the
// same round (the creates reserved together) find the backoff there and leave
// it. Returns {code, state, backoff ms, usage}: 0 ignored, 1 retry
// scheduled, 2 released.
var scriptCreateFailed = newScript(`
local name = ARGV[6]
local k = rkey(name)
local s = redis.call('HGET', k, 'state')
if s ~= 'pending' or redis.call('HGET', k, 'attempt') ~= ARGV[7] then return {0, s or ''} end
if ARGV[8] == 'retry' then
  redis.call('ZADD', RETRY, ARGV[9], 'create:' .. name)
  redis.call('HSET', k, 'updated_at', NOW)
  return {1, s}
end
if not writable(pkey(ARGV[15])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[15]) .. ' is not a stream')
end
local g = redis.call('HGET', k, 'group')
if not setstate(name, 'deleting') then return {0, s} end
redis.call('ZREM', RETRY, 'create:' .. name)
emit(pkey(ARGV[15]), ARGV[13], ARGV[14])
local base = tonumber(ARGV[10])
if g and base > 0 then
  local bk = gkey(g, 'backoff')
  local left = redis.call('PTTL', bk)
  if left > 0 then return {2, s, left, USAGE} end
  local fk = gkey(g, 'create_failures')
  local n = redis.call('INCR', fk)
  redis.call('PEXPIRE', fk, ARGV[12])
  local d = base
  local cap = tonumber(ARGV[11])
  for i = 2, n do
    if d >= cap then break end
    d = d * 2
  end
  if d > cap then d = cap end
  redis.call('SET', bk, NOW, 'PX', d)
  return {2, s, d, USAGE}
end
return {2, s, 0, USAGE}
`)

// DeleteFailed: ARGV[6] runner, ARGV[7] retry due time (ms). Returns 1 when a
// retry was scheduled (the runner is deleting), 0 otherwise.
// ARGV[8] the failure's reason. Counts the failure in the record
// (delete_failures, delete_error). Returns the failures so far, 0 when the
// runner has no record or is not deleting.
var scriptDeleteFailed = newScript(`
local k = rkey(ARGV[6])
if redis.call('HGET', k, 'state') ~= 'deleting' then return 0 end
redis.call('ZADD', RETRY, ARGV[7], 'delete:' .. ARGV[6])
redis.call('HSET', k, 'delete_error', ARGV[8])
return redis.call('HINCRBY', k, 'delete_failures', 1)
`)

// RetryCreate: ARGV[6] runner, ARGV[7] attempt it is at, ARGV[8] command data
// (attempt+1), ARGV[9] traceparent, ARGV[10] backend. Claims the retry entry
// (ZREM) so that it is emitted once. Returns 1 when emitted.
var scriptRetryCreate = newScript(`
local name = ARGV[6]
if not writable(pkey(ARGV[10])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[10]) .. ' is not a stream')
end
if redis.call('ZREM', RETRY, 'create:' .. name) == 0 then return 0 end
local k = rkey(name)
if redis.call('HGET', k, 'state') ~= 'pending' or redis.call('HGET', k, 'attempt') ~= ARGV[7] then return 0 end
emit(pkey(ARGV[10]), ARGV[8], ARGV[9])
redis.call('HSET', k, 'attempt', tonumber(ARGV[7]) + 1, 'updated_at', NOW)
return 1
`)

// RetryDelete: ARGV[6] runner, ARGV[7] command data, ARGV[8] traceparent,
// ARGV[9] backend. Returns 1 when emitted.
var scriptRetryDelete = newScript(`
local name = ARGV[6]
if not writable(pkey(ARGV[9])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[9]) .. ' is not a stream')
end
if redis.call('ZREM', RETRY, 'delete:' .. name) == 0 then return 0 end
if redis.call('HGET', rkey(name), 'state') ~= 'deleting' then return 0 end
emit(pkey(ARGV[9]), ARGV[7], ARGV[8])
redis.call('HSET', rkey(name), 'updated_at', NOW)
return 1
`)

// RequestDelete: ARGV[6] runner, ARGV[7] accepted states as ",a,b,",
// ARGV[8] command data, ARGV[9] traceparent, ARGV[10] backend.
// Returns {moved, state before, usage}.
var scriptRequestDelete = newScript(`
local name = ARGV[6]
if not writable(pkey(ARGV[10])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[10]) .. ' is not a stream')
end
local s = redis.call('HGET', rkey(name), 'state')
if not s then return {0, ''} end
if not string.find(ARGV[7], ',' .. s .. ',', 1, true) then return {0, s} end
if not setstate(name, 'deleting') then return {0, s} end
emit(pkey(ARGV[10]), ARGV[8], ARGV[9])
redis.call('ZREM', RETRY, 'create:' .. name)
return {1, s, USAGE}
`)

// Busy: ARGV[6] runner, ARGV[7] delete command data (job_completed, the
// registration gone), ARGV[8] traceparent, ARGV[9] backend.
// A busy result: GitHub refused to remove the registration of a deleting
// runner because it runs a job, and the provisioner kept its instance. The
// runner moves deleting -> busy (compare-and-set) and its pending delete
// retry is dropped; when its job (job_id) is completed already, that job's
// completed event found the runner deleting and emitted nothing, so the
// runner stays deleting and the delete of a finished job is emitted.
// Returns {code, state before}: 0 not deleting (nothing done), 1 busy,
// 2 job already completed (delete emitted).
var scriptBusy = newScript(`
local name = ARGV[6]
if not writable(pkey(ARGV[9])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[9]) .. ' is not a stream')
end
local k = rkey(name)
local s = redis.call('HGET', k, 'state')
if s ~= 'deleting' then return {0, s or ''} end
redis.call('ZREM', RETRY, 'delete:' .. name)
local job = redis.call('HGET', k, 'job_id') or '0'
if job ~= '0' and job ~= '' and redis.call('HGET', jkey(job), 'status') == 'completed' then
  emit(pkey(ARGV[9]), ARGV[7], ARGV[8])
  redis.call('HSET', k, 'updated_at', NOW)
  return {2, s}
end
if not setstate(name, 'busy') then return {0, s} end
return {1, s}
`)

// MarkIdle: ARGV[6] runner. pending or started -> idle. Returns {moved, state before}.
var scriptMarkIdle = newScript(`
local name = ARGV[6]
local s = redis.call('HGET', rkey(name), 'state')
if not s then return {0, ''} end
if (s == 'pending' or s == 'started') and setstate(name, 'idle') then return {1, s} end
return {0, s}
`)

// TopUp: group block at 6. Returns {1, reserved, short}.
var scriptTopUp = newScript(`
local g = readgroup(6)
local err = guard(g)
if err then return err end
local reserved, short = topup(g)
return {1, reserved, short}
`)
