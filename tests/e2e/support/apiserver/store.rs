//! The fake API server's storage: objects, one resourceVersion counter,
//! an event history that watches resume from, and a live event feed.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::resources::ResourceType;

/// A change to one object, as a watch reports it.
#[derive(Debug, Clone)]
pub struct Event {
    pub resource: ResourceType,
    pub namespace: String,
    /// ADDED, MODIFIED or DELETED.
    pub kind: &'static str,
    /// The object with `kind` and `apiVersion`, at that resourceVersion.
    pub object: Value,
    pub rv: u64,
}

/// Key of a stored object.
pub type Key = (&'static str, String, String);

/// Storage with etcd-like resourceVersions.
pub struct Store {
    pub rv: u64,
    pub objects: BTreeMap<Key, Value>,
    /// Who owns which status field path, per object (server-side apply).
    pub status_owners: HashMap<Key, BTreeMap<String, String>>,
    /// Events after `oldest_rv`, oldest first.
    pub history: Vec<Event>,
    /// Watches from a resourceVersion older than this get 410 Expired.
    pub oldest_rv: u64,
    pub feed: broadcast::Sender<Event>,
    uid_counter: u64,
}

impl Store {
    pub fn new() -> Self {
        let (feed, _) = broadcast::channel(4096);
        // A real cluster's counter is well past zero by the time anyone looks.
        Store {
            rv: 200,
            objects: BTreeMap::new(),
            status_owners: HashMap::new(),
            history: Vec::new(),
            oldest_rv: 200,
            feed,
            uid_counter: 0,
        }
    }

    pub fn key(resource: &ResourceType, namespace: &str, name: &str) -> Key {
        (resource.plural, if resource.namespaced { namespace.to_string() } else { String::new() }, name.to_string())
    }

    fn next_uid(&mut self) -> String {
        self.uid_counter += 1;
        let n = self.uid_counter;
        let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (t >> 16) as u32,
            n & 0xffff,
            (t & 0xfff),
            n & 0xfff,
            (t ^ n) & 0xffff_ffff_ffff
        )
    }

    /// The object as a watch event carries it: with `kind` and `apiVersion` first.
    pub fn with_type(resource: &ResourceType, obj: &Value) -> Value {
        let mut out = Map::new();
        out.insert("kind".into(), json!(resource.kind));
        out.insert("apiVersion".into(), json!(resource.api_version()));
        if let Value::Object(m) = obj {
            for (k, v) in m {
                if k != "kind" && k != "apiVersion" {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        Value::Object(out)
    }

    /// The object as a list item carries it: without `kind` and `apiVersion`.
    pub fn without_type(obj: &Value) -> Value {
        let mut obj = obj.clone();
        if let Value::Object(m) = &mut obj {
            m.remove("kind");
            m.remove("apiVersion");
        }
        obj
    }

    fn record(&mut self, resource: ResourceType, namespace: &str, kind: &'static str, obj: &Value) {
        let ev = Event {
            resource,
            namespace: namespace.to_string(),
            kind,
            object: Self::with_type(&resource, obj),
            rv: self.rv,
        };
        self.history.push(ev.clone());
        let _ = self.feed.send(ev);
    }

    /// Creates an object; `Err(())` when it exists already.
    pub fn create(&mut self, resource: ResourceType, mut obj: Value, manager: &str) -> Result<Value, ()> {
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("").to_string();
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
        let key = Self::key(&resource, &ns, &name);
        if self.objects.contains_key(&key) {
            return Err(());
        }
        self.rv += 1;
        let uid = self.next_uid();
        let now = now_rfc3339();
        let meta = obj.get_mut("metadata").and_then(Value::as_object_mut).expect("object has metadata");
        if !resource.namespaced {
            meta.remove("namespace");
        }
        meta.insert("uid".into(), json!(uid));
        meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        if matches!(
            resource.plural,
            "ingresses"
                | "ingressclasses"
                | "endpointslices"
                | "gatewayclasses"
                | "gateways"
                | "httproutes"
                | "grpcroutes"
                | "referencegrants"
        ) {
            meta.insert("generation".into(), json!(1));
        }
        meta.entry("creationTimestamp").or_insert(json!(now));
        meta.insert(
            "managedFields".into(),
            json!([{"manager": manager, "operation": "Update", "apiVersion": resource.api_version(),
                    "time": now, "fieldsType": "FieldsV1", "fieldsV1": {}}]),
        );
        normalise(&resource, &mut obj);
        let obj = Self::without_type(&obj);
        self.objects.insert(key, obj.clone());
        self.record(resource, &ns, "ADDED", &obj);
        Ok(Self::with_type(&resource, &obj))
    }

    /// Replaces an object's spec and metadata (as `kubectl apply` would), or creates it.
    pub fn upsert(&mut self, resource: ResourceType, obj: Value) -> Value {
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("").to_string();
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
        let key = Self::key(&resource, &ns, &name);
        let Some(old) = self.objects.get(&key).cloned() else {
            return self.create(resource, obj, "kubectl-client-side-apply").expect("absent");
        };
        let mut new = Self::without_type(&obj);
        let meta = new.get_mut("metadata").and_then(Value::as_object_mut).expect("metadata");
        for keep in ["uid", "creationTimestamp", "managedFields"] {
            if let Some(v) = old.pointer(&format!("/metadata/{keep}")) {
                meta.insert(keep.into(), v.clone());
            }
        }
        if !resource.namespaced {
            meta.remove("namespace");
        }
        if let Some(g) = old.pointer("/metadata/generation").and_then(Value::as_i64) {
            let changed = old.get("spec") != new.get("spec");
            new["metadata"]["generation"] = json!(if changed { g + 1 } else { g });
        }
        // Status is a subresource: a spec update keeps it.
        if let Some(status) = old.get("status") {
            new["status"] = status.clone();
        }
        normalise(&resource, &mut new);
        self.rv += 1;
        new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key, new.clone());
        self.record(resource, &ns, "MODIFIED", &new);
        Self::with_type(&resource, &new)
    }

    /// Replaces the status of an object, bumping its resourceVersion.
    pub fn set_status(&mut self, key: &Key, resource: ResourceType, status: Value) -> Value {
        let mut obj = self.objects.get(key).cloned().expect("exists");
        obj["status"] = status;
        normalise(&resource, &mut obj);
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key.clone(), obj.clone());
        self.record(resource, &key.1, "MODIFIED", &obj);
        Self::with_type(&resource, &obj)
    }

    /// Deletes an object; the event carries its last state at the deletion's resourceVersion.
    pub fn delete(&mut self, resource: ResourceType, namespace: &str, name: &str) -> Option<Value> {
        let key = Self::key(&resource, namespace, name);
        let mut obj = self.objects.remove(&key)?;
        self.status_owners.remove(&key);
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(resource, namespace, "DELETED", &obj);
        Some(Self::with_type(&resource, &obj))
    }

    /// Forgets the event history, as a restarted API server's watch cache
    /// does: watches from older resourceVersions then get 410 Expired.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest_rv = self.rv;
    }
}

/// Fills in the defaults a real API server adds, so that objects read back
/// look like the recorded ones.
fn normalise(resource: &ResourceType, obj: &mut Value) {
    if resource.plural == "ingresses" {
        let status = obj.as_object_mut().expect("object").entry("status").or_insert(json!({}));
        status.as_object_mut().map(|s| s.entry("loadBalancer").or_insert(json!({})));
    }
    if resource.plural == "services" {
        let spec = obj.as_object_mut().expect("object").entry("spec").or_insert(json!({}));
        if let Some(spec) = spec.as_object_mut() {
            spec.entry("type").or_insert(json!("ClusterIP"));
            if let Some(Value::Array(ports)) = spec.get_mut("ports") {
                for p in ports {
                    let port = p.get("port").cloned().unwrap_or(json!(0));
                    if let Some(p) = p.as_object_mut() {
                        p.entry("protocol").or_insert(json!("TCP"));
                        p.entry("targetPort").or_insert(port);
                    }
                }
            }
        }
        let status = obj.as_object_mut().expect("object").entry("status").or_insert(json!({}));
        status.as_object_mut().map(|s| s.entry("loadBalancer").or_insert(json!({})));
    }
}

/// The current time as the API server writes it.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = secs / 86400;
    let rem = secs % 86400;
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// The current time as an HTTP `Date` header (IMF-fixdate).
pub fn now_http_date() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = secs / 86400;
    let rem = secs % 86400;
    let (y, m, d) = civil_from_days(days as i64);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][m as usize - 1];
    format!("{weekday}, {d:02} {month} {y} {:02}:{:02}:{:02} GMT", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}
