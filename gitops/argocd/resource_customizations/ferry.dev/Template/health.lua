-- Argo CD health of a Ferry Template (ferry.dev), from the conditions the operator sets.
-- Written for an argocd-cm customization: no Lua standard library beyond base and table.
local hs = {}
local function condition(kind)
  for _, c in ipairs(obj.status.conditions or {}) do
    if c.type == kind then
      return c
    end
  end
  return nil
end
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ferry operator"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ferry operator to act on generation " .. obj.metadata.generation
  return hs
end
local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
elseif ready ~= nil then
  hs.status = "Degraded"
  hs.message = ready.reason .. ": " .. ready.message
else
  hs.status = "Progressing"
  hs.message = "Waiting for the Ferry operator"
end
return hs
