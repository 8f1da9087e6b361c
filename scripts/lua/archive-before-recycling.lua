-- Copies a patient's files to the folder of the configuration key "ArchiveFolder" before
-- recycling deletes the patient. If the copy fails, the patient is kept (the filter answers
-- false) and recycling tries the next one.
local root = GetOrthancConfiguration()['ArchiveFolder'] or '/tmp/dicomd-archive'

function RecyclingFilter(patientId, tags, metadata)
   local folder = root .. '/' .. (string.gsub(tags['PatientID'] or patientId, '[^%w%.%-_]', '_'))
   if not os.execute('mkdir -p "' .. folder .. '"') then
      return false
   end
   local instances = ParseJson(RestApiGet('/patients/' .. patientId .. '/instances'))
   for _, instance in ipairs(instances or {}) do
      local file = io.open(folder .. '/' .. instance['ID'] .. '.dcm', 'wb')
      if file == nil then
         return false
      end
      file:write(RestApiGet('/instances/' .. instance['ID'] .. '/file'))
      file:close()
   end
   return true
end

function OnRecycledPatient(patientId, tags, metadata)
   print('Recycled patient ' .. (tags['PatientID'] or patientId) .. ', archived under ' .. root)
end
