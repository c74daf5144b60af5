package state

// Scripts of the health checks (docs/design.md §7). They share the prelude of lua.go:
// ARGV[1] {P}, ARGV[2] now (ms), ARGV[3] MAXLEN ~ of the command streams.
// Their own keys live under {P}:health: (see health.go).

// DeleteOrphan: ARGV[4] runner name, ARGV[5] guard (ms), ARGV[6] delete
// command data, ARGV[7] traceparent, ARGV[8] backend.
// Emits the delete of an instance that has no record, at most once per guard
// period ({P}:health:orphan:<name>, SET NX PX). A runner that has a record is
// left alone. Returns 1 when the command was emitted.
var scriptDeleteOrphan = newScript(`
local name = ARGV[4]
if not writable(pkey(ARGV[8])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[8]) .. ' is not a stream')
end
if redis.call('EXISTS', rkey(name)) == 1 then return 0 end
if not redis.call('SET', P .. ':health:orphan:' .. name, NOW, 'NX', 'PX', ARGV[5]) then return 0 end
emit(pkey(ARGV[8]), ARGV[6], ARGV[7])
return 1
`)

// EmitList: ARGV[4] backend, ARGV[5] list command data, ARGV[6] traceparent,
// ARGV[7] spacing (ms), ARGV[8] command id, ARGV[9] what the command covers
// (kept for its inventory), ARGV[10] how long to keep it (ms).
// Emits at most one list command per backend and spacing
// ({P}:health:listed:<backend>), and remembers it under
// {P}:health:list:<command id>. Returns 1 when emitted.
var scriptEmitList = newScript(`
local backend = ARGV[4]
if not writable(pkey(backend)) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(backend) .. ' is not a stream')
end
if not redis.call('SET', P .. ':health:listed:' .. backend, NOW, 'NX', 'PX', ARGV[7]) then return 0 end
redis.call('SET', P .. ':health:list:' .. ARGV[8], ARGV[9], 'PX', ARGV[10])
emit(pkey(backend), ARGV[5], ARGV[6])
return 1
`)

// SetJobRepository: ARGV[4] job id, ARGV[5] owner, ARGV[6] repository.
// Adds where a known job runs to its record (the TTL is kept); a job without
// record is not created. Returns 1 when written.
var scriptSetJobRepository = newScript(`
local jk = jkey(ARGV[4])
if redis.call('EXISTS', jk) == 0 then return 0 end
redis.call('HSET', jk, 'owner', ARGV[5], 'repository', ARGV[6])
return 1
`)

// SeenGitHubOrphans: ARGV[4] scope, then the members seen now ("<id>:<name>").
// Keeps in {P}:health:ghorphans:<scope> the time each member was first seen
// (ZADD NX), forgets the members not seen now, and returns
// {member, first seen (ms), ...} of the members seen now.
var scriptSeenGitHubOrphans = newScript(`
local key = P .. ':health:ghorphans:' .. ARGV[4]
local seen = {}
for i = 5, #ARGV do
  seen[ARGV[i]] = true
  redis.call('ZADD', key, 'NX', NOW, ARGV[i])
end
local out = {}
local all = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
for i = 1, #all, 2 do
  if seen[all[i]] then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  else
    redis.call('ZREM', key, all[i])
  end
end
if #ARGV < 5 then redis.call('DEL', key) end
return out
`)

// SeenAbsent: ARGV[4] scope, then the runners absent from this listing.
// Counts in {P}:health:absent:<scope> the consecutive listings each was
// absent from, forgets the runners not absent now, and returns
// {runner, count, ...} of the runners absent now.
var scriptSeenAbsent = newScript(`
local key = P .. ':health:absent:' .. ARGV[4]
local now = {}
local out = {}
for i = 5, #ARGV do
  now[ARGV[i]] = true
  local n = redis.call('HINCRBY', key, ARGV[i], 1)
  out[#out + 1] = ARGV[i]
  out[#out + 1] = n
end
for _, name in ipairs(redis.call('HKEYS', key)) do
  if not now[name] then redis.call('HDEL', key, name) end
end
return out
`)

// RedeleteStale: ARGV[4] runner, ARGV[5] cutoff (ms), ARGV[6] delete command
// data, ARGV[7] traceparent, ARGV[8] backend.
// Emits the delete of a runner again when it has been deleting with no news
// (updated_at) since before the cutoff, and stamps updated_at, so that it is
// emitted once per period. Returns 1 when emitted.
var scriptRedeleteStale = newScript(`
local name = ARGV[4]
if not writable(pkey(ARGV[8])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[8]) .. ' is not a stream')
end
local k = rkey(name)
if redis.call('HGET', k, 'state') ~= 'deleting' then return 0 end
local upd = tonumber(redis.call('HGET', k, 'updated_at') or '0') or 0
if upd >= tonumber(ARGV[5]) then return 0 end
-- A failed delete whose retry is scheduled is not lost: it backs off.
if redis.call('ZSCORE', RETRY, 'delete:' .. name) then return 0 end
emit(pkey(ARGV[8]), ARGV[6], ARGV[7])
redis.call('HSET', k, 'updated_at', NOW)
return 1
`)
