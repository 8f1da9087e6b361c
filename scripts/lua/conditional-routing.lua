-- Routes on the instance's tags: test patients are deleted, CT goes to the peer "ct-pacs",
-- everything else to "pacs". The decision is recorded as the "Route" metadata first (declare
-- it in "UserMetadata"), so it can be seen with GET /instances/{id}/metadata/Route.
function OnStoredInstance(instanceId, tags, metadata, origin)
   local name = string.lower(tags.PatientName or '')
   if string.find(name, 'test', 1, true) then
      print('Deleting test instance ' .. instanceId)
      Delete(instanceId)
      return
   end
   local peer = 'pacs'
   if tags.Modality == 'CT' then
      peer = 'ct-pacs'
   end
   RestApiPut('/instances/' .. instanceId .. '/metadata/Route', peer)
   SendToPeer(instanceId, peer)
end
