-- Forwards every instance received from outside to the Orthanc peer "pacs" in an
-- asynchronous job, and when such a job fails for good (after the peer's MaxRetries),
-- resubmits it, at most 3 times; then it is left failed, as a dead letter
-- (GET /peers/pacs/dead-letters). A job that a user cancelled (ErrorCode 37) is left alone.
-- The count is kept in memory: a restart or an edit of the script starts it again.
local PEER = 'pacs'
local MAX_RESUBMITS = 3
local resubmitted = {}  -- job ID -> how many times

function OnStoredInstance(instanceId, tags, metadata, origin)
   if origin.RequestOrigin ~= 'Lua' then
      local request = { Resources = { instanceId }, Asynchronous = true }
      local answer = RestApiPost('/peers/' .. PEER .. '/store', DumpJson(request, true))
      if answer == nil then
         error('cannot forward ' .. instanceId .. ' to ' .. PEER)
      end
   end
end

-- The job, if it is one of ours: a forward to PEER that still exists.
local function forwardJob(jobId)
   local answer = RestApiGet('/jobs/' .. jobId)
   if answer == nil then
      return nil
   end
   local job = ParseJson(answer)
   if job.Type == 'OrthancPeerStore' and job.Content.Peer[1] == PEER then
      return job
   end
   return nil
end

function OnJobFailure(jobId)
   local job = forwardJob(jobId)
   if job == nil or job.ErrorCode == 37 then
      return
   end
   local count = resubmitted[jobId] or 0
   if count >= MAX_RESUBMITS then
      resubmitted[jobId] = nil
      print('forward job ' .. jobId .. ' left failed after ' .. count .. ' resubmits: '
            .. job.ErrorDetails)
      return
   end
   resubmitted[jobId] = count + 1
   print('forward job ' .. jobId .. ' failed, resubmit ' .. (count + 1) .. ' of '
         .. MAX_RESUBMITS)
   RestApiPost('/jobs/' .. jobId .. '/resubmit', '')
end

function OnJobSuccess(jobId)
   resubmitted[jobId] = nil
end
