-- Protects from recycling every patient whose name marks a research subject ("RESEARCH" in
-- the PatientName), so that research data is never recycled to make room.
function OnStoredInstance(instanceId, tags, metadata, origin)
   local name = string.upper(tags['PatientName'] or '')
   if string.find(name, 'RESEARCH', 1, true) then
      local patient = ParseJson(RestApiGet('/instances/' .. instanceId .. '/patient'))
      if RestApiGet('/patients/' .. patient['ID'] .. '/protected') ~= '1' then
         RestApiPut('/patients/' .. patient['ID'] .. '/protected', '1')
         print('Protected patient ' .. patient['ID'])
      end
   end
end
