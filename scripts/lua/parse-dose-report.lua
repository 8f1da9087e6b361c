-- Reads the total dose-length product (DLP) of CT radiation dose SRs and stores it as the
-- instance's metadata 2001 (name it in "UserMetadata" to read it by name).
local function findDlp(items)
   for _, item in ipairs(items or {}) do
      local concept = item['ConceptNameCodeSequence']
      if concept and concept[1] and concept[1]['CodeValue'] == '113813' then
         local measured = item['MeasuredValueSequence']
         if measured and measured[1] then
            return measured[1]['NumericValue']
         end
      end
      local nested = findDlp(item['ContentSequence'])
      if nested then
         return nested
      end
   end
   return nil
end

function OnStoredInstance(instanceId, tags, metadata, origin)
   if tags['Modality'] == 'SR' then
      local dlp = findDlp(tags['ContentSequence'])
      if dlp then
         print('DLP of ' .. instanceId .. ': ' .. dlp)
         RestApiPut('/instances/' .. instanceId .. '/metadata/2001', tostring(dlp))
      end
   end
end
