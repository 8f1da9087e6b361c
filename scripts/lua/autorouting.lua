-- Forwards every instance received from outside to the Orthanc peer "pacs" (the
-- "OrthancPeers" configuration key). Instances that a script stored itself are skipped.
function OnStoredInstance(instanceId, tags, metadata, origin)
   if origin.RequestOrigin ~= 'Lua' then
      SendToPeer(instanceId, 'pacs')
   end
end
