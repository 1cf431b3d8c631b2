// Offline validation of the Kubernetes manifests under deploy/ (no cluster, no network):
//  1. render each kustomization with kustomize-lite (YAML syntax, duplicate keys, patches apply)
//  2. JSON-schema types / required fields / enums      (npm: kubernetes-models, precompiled Ajv)
//  3. unknown fields, like kubeconform -strict          (npm: @kubernetes/client-node type maps)
//  4. rules the OpenAPI schema lacks                    (image required, removed apiVersions)
//  5. project rules: every pod is non-root, read-only root, no privilege escalation, all
//     capabilities dropped, RuntimeDefault seccomp, requests and limits, a pinned image tag
//  6. cross-object references, which only an API server plus controllers would otherwise reveal:
//     Service/PDB/NetworkPolicy selectors select pods, named ports exist, Ingress backends and
//     HPA targets exist, ConfigMaps/Secrets/volumes/claims referenced by pods exist
//
// usage:
//   node validate-k8s.mjs [--secret-template FILE]... TARGET...
//       TARGET = a kustomization directory (rendered, then checked as one set) or a YAML file
//       (checked alone). A --secret-template file is validated and stands in for a Secret that
//       is created out of band: pods may reference it and the keys it lists.
//   node validate-k8s.mjs --compare DIR RENDERED.yaml
//       compare kustomize-lite's rendering of DIR with another renderer's output (kubectl kustomize)
//   node validate-k8s.mjs --self-test DIR
//       DIR/bad/*.yaml must each fail with the messages in their "# expect:" lines;
//       DIR/render/*/ must each render to their expected.yaml (recorded from kubectl kustomize)
// exit status: 0 all valid, 1 something invalid, 2 usage error
import { readFileSync, readdirSync, existsSync, statSync } from "node:fs";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { render, loadYamlDocs, idOf, KustomizeError } from "./kustomize-lite.mjs";

const REMOVED = /^(extensions\/v1beta1|apps\/v1beta[12]|policy\/v1beta1|autoscaling\/v2beta[12]|networking\.k8s\.io\/v1beta1|batch\/v1beta1|flowcontrol\.apiserver\.k8s\.io\/v1beta[123])$/;
const WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"]);

// ---- per-document checks -----------------------------------------------------------------

function classFor(apiVersion, kind) {
  const ver = apiVersion.split("/").pop();
  return k8s[ver[0].toUpperCase() + ver.slice(1) + kind];
}
function unknownFields(value, type, path, out) {
  if (value == null) return;
  let m;
  if ((m = /^Array<(.+)>$/.exec(type))) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, m[1], `${path}/${i}`, out));
    return;
  }
  if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
    if (typeof value === "object") for (const [k, v] of Object.entries(value)) unknownFields(v, m[1], `${path}/${k}`, out);
    return;
  }
  const cls = k8s[type];
  if (typeof cls?.getAttributeTypeMap !== "function" || typeof value !== "object" || Array.isArray(value)) return;
  const attrs = new Map(cls.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    if (!attrs.has(k)) out.push(`${path}/${k}: unknown field`);
    else unknownFields(v, attrs.get(k), `${path}/${k}`, out);
  }
}
export function podSpecOf(obj) {
  if (obj.kind === "Pod") return obj.spec;
  if (obj.kind === "CronJob") return obj.spec?.jobTemplate?.spec?.template?.spec;
  return WORKLOADS.has(obj.kind) ? obj.spec?.template?.spec : undefined;
}
function podLabelsOf(obj) {
  if (obj.kind === "Pod") return obj.metadata?.labels ?? {};
  if (obj.kind === "CronJob") return obj.spec?.jobTemplate?.spec?.template?.metadata?.labels ?? {};
  return obj.spec?.template?.metadata?.labels ?? {};
}
function containersOf(pod) {
  return [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])];
}

// The Pod Security Standard "restricted" profile plus the project's own requirements.
function podRules(obj, problems) {
  const pod = podSpecOf(obj);
  if (!pod) return;
  const psc = pod.securityContext ?? {};
  for (const c of containersOf(pod)) {
    const where = `container ${c.name}`;
    const sc = c.securityContext ?? {};
    if (!c.image) { problems.push(`${where}: image is required`); continue; }
    const tag = /^[^@]*?(?::([^/:@]+))?(@sha256:[0-9a-f]{64})?$/.exec(c.image);
    if (!tag?.[2] && (!tag?.[1] || tag[1] === "latest")) problems.push(`${where}: image ${c.image} needs a fixed tag or digest (not :latest)`);
    if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true) problems.push(`${where}: runAsNonRoot must be true`);
    const uid = sc.runAsUser ?? psc.runAsUser;
    if (uid === 0) problems.push(`${where}: runAsUser 0 (root)`);
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${where}: allowPrivilegeEscalation must be false`);
    if (sc.privileged === true) problems.push(`${where}: privileged`);
    if (sc.readOnlyRootFilesystem !== true) problems.push(`${where}: readOnlyRootFilesystem must be true`);
    if (!(sc.capabilities?.drop ?? []).includes("ALL")) problems.push(`${where}: capabilities must drop ALL`);
    if ((sc.capabilities?.add ?? []).some((a) => a !== "NET_BIND_SERVICE")) problems.push(`${where}: adds capabilities ${sc.capabilities.add}`);
    const seccomp = sc.seccompProfile?.type ?? psc.seccompProfile?.type;
    if (!["RuntimeDefault", "Localhost"].includes(seccomp)) problems.push(`${where}: seccompProfile must be RuntimeDefault`);
    for (const k of ["requests", "limits"]) for (const r of ["cpu", "memory"]) {
      if (c.resources?.[k]?.[r] === undefined) problems.push(`${where}: resources.${k}.${r} is not set`);
    }
  }
  for (const c of pod.containers ?? []) {
    if (["Deployment", "StatefulSet", "DaemonSet"].includes(obj.kind) && !c.readinessProbe) problems.push(`container ${c.name}: no readinessProbe`);
    if (["Deployment", "StatefulSet", "DaemonSet"].includes(obj.kind) && !c.livenessProbe) problems.push(`container ${c.name}: no livenessProbe`);
  }
  if (pod.hostNetwork || pod.hostPID || pod.hostIPC) problems.push("pod uses host namespaces");
  for (const v of pod.volumes ?? []) if (v.hostPath) problems.push(`volume ${v.name}: hostPath`);
}

async function checkDocument(obj) {
  const problems = [];
  const { apiVersion, kind } = obj;
  if (!apiVersion || !kind) return ["missing apiVersion/kind"];
  if (REMOVED.test(apiVersion)) problems.push(`apiVersion ${apiVersion} is removed from current Kubernetes`);
  let Model;
  try { Model = (await import(`kubernetes-models/${apiVersion}`))[kind]; } catch { /* unknown group/version */ }
  if (typeof Model !== "function") problems.push(`unknown apiVersion/kind ${apiVersion} ${kind}`);
  else {
    try { new Model(obj).validate(); } catch (e) {
      for (const x of e.errors ?? [{ instancePath: "", message: e.message }]) problems.push(`${x.instancePath || "/"} ${x.message}`);
    }
  }
  const cls = classFor(apiVersion, kind);
  if (cls) unknownFields(obj, cls.name, "", problems);
  if (!obj.metadata?.name) problems.push("metadata.name is required");
  podRules(obj, problems);
  return problems;
}

// ---- cross-object checks -------------------------------------------------------------------

function selects(selector, labels) {
  if (!selector) return false;
  const ml = selector.matchLabels ?? (selector.matchExpressions ? {} : selector);
  for (const [k, v] of Object.entries(ml)) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = e.key in labels;
    if (e.operator === "In" && !(has && e.values.includes(labels[e.key]))) return false;
    if (e.operator === "NotIn" && has && e.values.includes(labels[e.key])) return false;
    if (e.operator === "Exists" && !has) return false;
    if (e.operator === "DoesNotExist" && has) return false;
  }
  return true;
}
function containerPorts(pod) {
  return containersOf(pod).flatMap((c) => c.ports ?? []);
}

/** Problems per document index, for references between the documents of one set. */
function crossCheck(objs, templates) {
  const probs = objs.map(() => []);
  const ns = (o) => o.metadata?.namespace ?? "";
  const find = (kind, name, n) => objs.find((o) => o.kind === kind && o.metadata?.name === name && ns(o) === n);
  const workloads = objs.filter((o) => podSpecOf(o));
  const podsSelected = (sel, n) => workloads.filter((w) => ns(w) === n && selects(sel, podLabelsOf(w)));
  const secretKeys = (name, n) => {
    const s = find("Secret", name, n) ?? templates.find((t) => t.metadata?.name === name);
    return s ? new Set([...Object.keys(s.data ?? {}), ...Object.keys(s.stringData ?? {})]) : null;
  };
  objs.forEach((o, i) => {
    const p = probs[i];
    const n = ns(o);
    const pod = podSpecOf(o);
    if (pod) {
      if (o.kind !== "Pod" && o.kind !== "CronJob" && !selects(o.spec?.selector, podLabelsOf(o))) p.push("spec.selector does not select the pod template's labels");
      const vols = new Set([...(pod.volumes ?? []).map((v) => v.name), ...(o.spec?.volumeClaimTemplates ?? []).map((v) => v.metadata?.name)]);
      for (const v of pod.volumes ?? []) {
        if (v.configMap && !v.configMap.optional && !find("ConfigMap", v.configMap.name, n)) p.push(`volume ${v.name}: ConfigMap ${v.configMap.name} is not defined`);
        if (v.secret && !v.secret.optional && !secretKeys(v.secret.secretName, n)) p.push(`volume ${v.name}: Secret ${v.secret.secretName} is not defined`);
        if (v.persistentVolumeClaim && !find("PersistentVolumeClaim", v.persistentVolumeClaim.claimName, n)) p.push(`volume ${v.name}: PVC ${v.persistentVolumeClaim.claimName} is not defined`);
      }
      for (const c of containersOf(pod)) {
        for (const m of c.volumeMounts ?? []) if (!vols.has(m.name)) p.push(`container ${c.name}: volumeMount ${m.name} has no volume`);
        for (const e of c.envFrom ?? []) {
          if (e.configMapRef && !e.configMapRef.optional && !find("ConfigMap", e.configMapRef.name, n)) p.push(`container ${c.name}: envFrom ConfigMap ${e.configMapRef.name} is not defined`);
          if (e.secretRef && !e.secretRef.optional && !secretKeys(e.secretRef.name, n)) p.push(`container ${c.name}: envFrom Secret ${e.secretRef.name} is not defined`);
        }
        for (const e of c.env ?? []) {
          const cm = e.valueFrom?.configMapKeyRef; const sk = e.valueFrom?.secretKeyRef;
          if (cm && !cm.optional) {
            const t = find("ConfigMap", cm.name, n);
            if (!t) p.push(`container ${c.name}: env ${e.name}: ConfigMap ${cm.name} is not defined`);
            else if (!(cm.key in (t.data ?? {}))) p.push(`container ${c.name}: env ${e.name}: ConfigMap ${cm.name} has no key ${cm.key}`);
          }
          if (sk && !sk.optional) {
            const keys = secretKeys(sk.name, n);
            if (!keys) p.push(`container ${c.name}: env ${e.name}: Secret ${sk.name} is not defined`);
            else if (!keys.has(sk.key)) p.push(`container ${c.name}: env ${e.name}: Secret ${sk.name} has no key ${sk.key}`);
          }
        }
        const named = new Set((c.ports ?? []).map((x) => x.name).filter(Boolean));
        for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
          const port = c[probe]?.httpGet?.port ?? c[probe]?.tcpSocket?.port ?? c[probe]?.grpc?.port;
          if (typeof port === "string" && !named.has(port)) p.push(`container ${c.name}: ${probe} port ${port} is not a named container port`);
        }
      }
      if (o.kind === "StatefulSet") {
        const svc = find("Service", o.spec.serviceName, n);
        if (!svc) p.push(`serviceName ${o.spec.serviceName}: no such Service`);
        else if (svc.spec?.clusterIP !== "None") p.push(`serviceName ${o.spec.serviceName} is not a headless Service`);
      }
    }
    if (o.kind === "Service" && o.spec?.selector) {
      const pods = podsSelected(o.spec.selector, n);
      if (!pods.length) p.push("selector matches no workload's pods");
      for (const port of o.spec.ports ?? []) {
        const t = port.targetPort ?? port.port;
        const ok = pods.some((w) => containerPorts(podSpecOf(w)).some((cp) => (typeof t === "string" ? cp.name === t : cp.containerPort === t)));
        if (pods.length && !ok) p.push(`port ${port.name ?? port.port}: targetPort ${t} is not a container port of the selected pods`);
      }
    }
    if (o.kind === "Ingress") {
      const backends = [o.spec?.defaultBackend, ...(o.spec?.rules ?? []).flatMap((r) => (r.http?.paths ?? []).map((x) => x.backend))].filter(Boolean);
      for (const b of backends) {
        if (!b.service) continue;
        const svc = find("Service", b.service.name, n);
        if (!svc) { p.push(`backend Service ${b.service.name} is not defined`); continue; }
        const want = b.service.port?.name ?? b.service.port?.number;
        if (!(svc.spec?.ports ?? []).some((x) => x.name === want || x.port === want)) p.push(`backend port ${want} is not a port of Service ${b.service.name}`);
      }
      const tlsHosts = new Set((o.spec?.tls ?? []).flatMap((t) => t.hosts ?? []));
      for (const r of o.spec?.rules ?? []) if (r.host && !tlsHosts.has(r.host)) p.push(`host ${r.host} is not covered by spec.tls`);
    }
    if (o.kind === "HorizontalPodAutoscaler") {
      const ref = o.spec?.scaleTargetRef ?? {};
      const t = find(ref.kind, ref.name, n);
      if (!t) p.push(`scaleTargetRef ${ref.kind}/${ref.name} is not defined`);
      else if ((o.spec.metrics ?? []).some((m) => m.resource?.target?.type === "Utilization")) {
        for (const m of o.spec.metrics) {
          if (m.resource?.target?.type !== "Utilization") continue;
          for (const c of podSpecOf(t)?.containers ?? []) if (c.resources?.requests?.[m.resource.name] === undefined) p.push(`utilization of ${m.resource.name} needs a request on container ${c.name}`);
        }
      }
      if ((o.spec?.minReplicas ?? 1) > o.spec?.maxReplicas) p.push("minReplicas > maxReplicas");
    }
    if (o.kind === "PodDisruptionBudget" && !podsSelected(o.spec?.selector, n).length) p.push("selector matches no workload's pods");
    if (o.kind === "NetworkPolicy") {
      const sel = o.spec?.podSelector ?? {};
      const targets = Object.keys(sel).length === 0 ? workloads.filter((w) => ns(w) === n) : podsSelected(sel, n);
      if (!targets.length) p.push("podSelector matches no workload's pods");
      for (const dir of ["ingress", "egress"]) {
        for (const rule of o.spec?.[dir] ?? []) {
          for (const peer of [...(rule.from ?? []), ...(rule.to ?? [])]) {
            if (peer.podSelector && !peer.namespaceSelector && Object.keys(peer.podSelector).length && !podsSelected(peer.podSelector, n).length) {
              p.push(`${dir} peer podSelector ${JSON.stringify(peer.podSelector.matchLabels ?? peer.podSelector)} matches no workload's pods`);
            }
          }
          if (dir === "ingress") {
            for (const port of rule.ports ?? []) {
              const ok = targets.some((w) => containerPorts(podSpecOf(w)).some((cp) => cp.containerPort === port.port || cp.name === port.port));
              if (targets.length && !ok) p.push(`ingress port ${port.port} is not a container port of the selected pods`);
            }
          }
        }
      }
    }
  });
  return probs;
}

// ---- driving -------------------------------------------------------------------------------

async function validateSet(label, entries, templates, log) {
  let failed = 0;
  const cross = crossCheck(entries.map((e) => e.obj), templates);
  for (const [i, { obj, origin }] of entries.entries()) {
    const problems = [...(await checkDocument(obj)), ...cross[i]];
    const what = `${obj.apiVersion} ${obj.kind} ${obj.metadata?.name ?? ""}`;
    if (problems.length) { failed++; log(`FAIL ${label} ${origin} (${what}): ${problems.join("; ")}`); }
    else log(`ok   ${label} ${origin} (${what})`);
  }
  return failed;
}

function loadTarget(t) {
  return statSync(t).isDirectory() ? render(t) : loadYamlDocs(t);
}

async function validate(targets, templateFiles, log = console.log) {
  let failed = 0;
  const templates = [];
  for (const f of templateFiles) {
    const docs = loadYamlDocs(f);
    for (const d of docs) if (d.obj.kind !== "Secret") { failed++; log(`FAIL ${d.origin}: a secret template must hold only Secrets`); }
    failed += await validateSet("[template]", docs, [], log);
    templates.push(...docs.map((d) => d.obj));
  }
  for (const t of targets) {
    let entries;
    try { entries = loadTarget(t); } catch (e) {
      if (!(e instanceof KustomizeError)) throw e;
      failed++; log(`FAIL [${t}] ${e.message}`); continue;
    }
    failed += await validateSet(`[${t}]`, entries, templates, log);
  }
  return failed;
}

function canonical(v) {
  return JSON.stringify(v, (k, x) => (x && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x));
}
function compareRenders(dir, otherFile, log = console.log) {
  const mine = new Map(render(dir).map((r) => [idOf(r.obj), r.obj]));
  const theirs = new Map(loadYamlDocs(otherFile).map((d) => [idOf(d.obj), d.obj]));
  let diffs = 0;
  for (const id of new Set([...mine.keys(), ...theirs.keys()])) {
    if (!mine.has(id)) { diffs++; log(`DIFF ${dir}: ${id} only in ${otherFile}`); }
    else if (!theirs.has(id)) { diffs++; log(`DIFF ${dir}: ${id} only in kustomize-lite's rendering`); }
    else if (canonical(mine.get(id)) !== canonical(theirs.get(id))) { diffs++; log(`DIFF ${dir}: ${id} differs`); }
  }
  if (!diffs) log(`same ${dir}: ${mine.size} objects identical to ${otherFile}`);
  return diffs;
}

async function selfTest(dir) {
  let failed = 0; let passed = 0;
  const badDir = join(dir, "bad");
  for (const f of readdirSync(badDir).filter((x) => /\.ya?ml$/.test(x)).sort()) {
    const file = join(badDir, f);
    const expects = [...readFileSync(file, "utf8").matchAll(/^# expect: (.+)$/gm)].map((m) => m[1].trim());
    const lines = [];
    const n = await validate([file], [], (l) => lines.push(l));
    const out = lines.join("\n");
    const missing = expects.filter((e) => !out.includes(e));
    if (n > 0 && expects.length && !missing.length) { passed++; console.log(`ok   self-test ${file}: rejected as expected`); }
    else { failed++; console.log(`FAIL self-test ${file}: ${n ? `missing ${JSON.stringify(missing)}` : "accepted"}${expects.length ? "" : " (no # expect: line)"}\n${out}`); }
  }
  const renderDir = join(dir, "render");
  for (const c of existsSync(renderDir) ? readdirSync(renderDir).sort() : []) {
    const cdir = join(renderDir, c);
    const lines = [];
    let diffs;
    try { diffs = compareRenders(join(cdir, "input"), join(cdir, "expected.yaml"), (l) => lines.push(l)); } catch (e) {
      if (!(e instanceof KustomizeError)) throw e;
      diffs = 1; lines.push(e.message);
    }
    if (!diffs) { passed++; console.log(`ok   self-test ${cdir}: renders as kubectl kustomize did`); }
    else { failed++; console.log(`FAIL self-test ${cdir}:\n${lines.join("\n")}`); }
  }
  console.log(`validator self-test: ${passed} ok, ${failed} wrong`);
  return failed;
}

// ---- CLI -----------------------------------------------------------------------------------
const args = process.argv.slice(2);
let status;
try {
  if (args[0] === "--compare" && args.length === 3) status = compareRenders(args[1], args[2]) ? 1 : 0;
  else if (args[0] === "--self-test" && args.length === 2) status = (await selfTest(args[1])) ? 1 : 0;
  else {
    const templates = []; const targets = [];
    for (let i = 0; i < args.length; i++) {
      if (args[i] === "--secret-template" && i + 1 < args.length) templates.push(args[++i]);
      else if (args[i].startsWith("--")) { targets.length = 0; break; }
      else targets.push(args[i]);
    }
    if (!targets.length) {
      console.error("usage: validate-k8s.mjs [--secret-template FILE]... TARGET... | --compare DIR FILE | --self-test DIR");
      process.exit(2);
    }
    const failed = await validate(targets, templates);
    console.log(failed ? `validate-k8s: ${failed} document(s) invalid` : "validate-k8s: all documents valid");
    status = failed ? 1 : 0;
  }
} catch (e) {
  if (!(e instanceof KustomizeError)) throw e;
  console.log(`FAIL ${e.message}`);
  status = 1;
}
process.exit(status);
