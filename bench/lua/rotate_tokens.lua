-- A different bearer token on every request (the cold test): reads one token per line
-- from the file named after `--` on wrk's command line and cycles through them.
--   wrk ... -s bench/lua/rotate_tokens.lua URL -- tokens.txt

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "summary.lua")

local headers = {}
local count = 0
local i = 0

init = function(args)
   for line in io.lines(args[1]) do
      count = count + 1
      headers[count] = "Bearer " .. line
   end
   assert(count > 0, "rotate_tokens.lua: no tokens in " .. tostring(args[1]))
end

request = function()
   i = i % count + 1
   return wrk.format(nil, nil, {["Authorization"] = headers[i]})
end
