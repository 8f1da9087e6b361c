-- Writes every stable series to a folder tree <PatientID>/<StudyInstanceUID>/<SeriesNumber>
-- under the folder named by the configuration key "WriteToDiskFolder".
local root = GetOrthancConfiguration()['WriteToDiskFolder'] or '/tmp/dicomd-series'

local function clean(text)
   return (string.gsub(tostring(text or 'unknown'), '[^%w%.%-_]', '_'))
end

function OnStableSeries(seriesId, tags, metadata)
   local series = ParseJson(RestApiGet('/series/' .. seriesId))
   local study = ParseJson(RestApiGet('/studies/' .. series['ParentStudy']))
   local folder = root .. '/' .. clean(study['PatientMainDicomTags']['PatientID']) .. '/' ..
      clean(study['MainDicomTags']['StudyInstanceUID']) .. '/' .. clean(tags['SeriesNumber'])
   os.execute('mkdir -p "' .. folder .. '"')
   for _, instanceId in ipairs(series['Instances']) do
      local file = assert(io.open(folder .. '/' .. instanceId .. '.dcm', 'wb'))
      file:write(RestApiGet('/instances/' .. instanceId .. '/file'))
      file:close()
   end
   print('Series ' .. seriesId .. ' written to ' .. folder)
end
