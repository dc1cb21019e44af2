-- Argo CD health of a Ferry Workflow (ferry.dev), from the conditions the operator sets.
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
local reconciling = condition("Reconciling")
local stalled = condition("Stalled")
if is(ready, "False") then
  hs.status = "Degraded"
  hs.message = ready.reason .. ": " .. ready.message
elseif is(reconciling, "True") then
  hs.status = "Progressing"
  hs.message = reconciling.message
elseif obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Suspended: no scheduled runs"
  if is(stalled, "True") then
    hs.message = hs.message .. "; last " .. stalled.message
  end
elseif is(stalled, "True") then
  hs.status = "Degraded"
  hs.message = stalled.message
elseif is(ready, "True") then
  hs.status = "Healthy"
  if obj.status.lastRun ~= nil then
    hs.message = "run " .. obj.status.lastRun.id .. " " .. obj.status.lastRun.result
  else
    hs.message = ready.message
  end
else
  hs.status = "Progressing"
  hs.message = "Waiting for the Ferry operator"
end
return hs
