-- Argo CD health of a Ferry Environment (ferry.dev), from the conditions the operator sets.
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
local function is(c, value)
  return c ~= nil and c.status == value
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
local connected = condition("Connected")
local reconciling = condition("Reconciling")
local stalled = condition("Stalled")
if is(ready, "False") then
  hs.status = "Degraded"
  hs.message = ready.reason .. ": " .. ready.message
elseif is(stalled, "True") then
  hs.status = "Degraded"
  hs.message = stalled.reason .. ": " .. stalled.message
elseif connected ~= nil and connected.status ~= "True" then
  hs.status = "Degraded"
  hs.message = connected.reason .. ": " .. connected.message
elseif is(reconciling, "True") then
  hs.status = "Progressing"
  hs.message = reconciling.message
elseif is(ready, "True") and is(connected, "True") then
  hs.status = "Healthy"
  hs.message = connected.message
else
  hs.status = "Progressing"
  hs.message = "Waiting for the Ferry operator's connection check"
end
return hs
