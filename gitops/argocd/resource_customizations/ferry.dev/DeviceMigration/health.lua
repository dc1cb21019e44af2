-- Argo CD health of a Ferry DeviceMigration (ferry.dev), from the status the operator sets.
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
local progress = ""
if obj.status.progress ~= nil then
  progress = " (" .. obj.status.progress .. " done)"
end
local failed = obj.status.devicesFailed or 0
if is(ready, "False") then
  hs.status = "Degraded"
  hs.message = ready.reason .. ": " .. ready.message
elseif (obj.spec ~= nil and obj.spec.paused == true) or obj.status.phase == "Paused" then
  hs.status = "Suspended"
  hs.message = "Paused by spec" .. progress
  if failed > 0 then
    hs.message = hs.message .. "; " .. failed .. " devices failed"
  end
elseif failed > 0 then
  hs.status = "Degraded"
  hs.message = failed .. " devices failed" .. progress
    .. "; retry them with the ferry.dev/retry-devices annotation"
elseif is(stalled, "True") then
  hs.status = "Degraded"
  hs.message = stalled.message
elseif is(reconciling, "True") then
  hs.status = "Progressing"
  hs.message = reconciling.message
elseif obj.status.phase == "Completed" then
  hs.status = "Healthy"
  hs.message = condition("Progressing") and condition("Progressing").message or "Completed"
else
  hs.status = "Progressing"
  hs.message = "Waiting for the Ferry operator"
end
return hs
