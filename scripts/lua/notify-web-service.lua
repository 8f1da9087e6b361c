-- Tells a web service that a study is complete (stable): POSTs a JSON summary to the URL
-- of the configuration key "NotifyUrl", with the credentials of "NotifyUser"/"NotifyPassword".
local config = GetOrthancConfiguration()

function OnStableStudy(studyId, tags, metadata)
   local url = config['NotifyUrl']
   if url == nil then
      return
   end
   if config['NotifyUser'] then
      SetHttpCredentials(config['NotifyUser'], config['NotifyPassword'] or '')
   end
   SetHttpTimeout(10)
   local study = ParseJson(RestApiGet('/studies/' .. studyId))
   local message = {
      StudyId = studyId,
      StudyInstanceUID = tags['StudyInstanceUID'],
      AccessionNumber = tags['AccessionNumber'] or '',
      PatientID = study['PatientMainDicomTags']['PatientID'],
      CountSeries = #study['Series'],
   }
   -- keepStrings: an accession number such as "0012" stays a string.
   local answer = HttpPost(url, DumpJson(message, true), { ['Content-Type'] = 'application/json' })
   if answer == nil then
      error('the web service at ' .. url .. ' did not answer')
   end
end
