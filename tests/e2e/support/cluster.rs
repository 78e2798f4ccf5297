//! A test cluster: the fake API server plus pod servers, with helpers that
//! create objects the way a cluster's controllers would.

use std::path::PathBuf;

use serde_json::{Value, json};
use tempfile::TempDir;

use super::apiserver::FakeApiServer;
use super::apiserver::resources::{ENDPOINT_SLICES, INGRESSES, PODS, SERVICES};
use super::pods::{PodServer, TcpPodServer};

pub struct TestCluster {
    pub api: FakeApiServer,
    pub dir: TempDir,
    pub kubeconfig: PathBuf,
    pub pods: Vec<PodServer>,
    pub tcp_pods: Vec<TcpPodServer>,
}

impl TestCluster {
    pub async fn start() -> Self {
        let api = FakeApiServer::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = api.write_kubeconfig(dir.path());
        TestCluster { api, dir, kubeconfig, pods: Vec::new(), tcp_pods: Vec::new() }
    }

    /// A Service `name` in `ns` with one port `(port name, port, targetPort)`.
    pub fn service(&self, ns: &str, name: &str, port_name: &str, port: u16, target: Value) {
        let mut p = json!({"port": port, "targetPort": target, "protocol": "TCP"});
        if !port_name.is_empty() {
            p["name"] = json!(port_name);
        }
        self.api.apply(
            SERVICES,
            json!({"metadata": {"name": name, "namespace": ns},
                   "spec": {"selector": {"app": name}, "ports": [p]}}),
        );
    }

    /// Starts `n` pods for Service `svc` listening on `container_port`, and
    /// publishes them, ready, in the Service's EndpointSlice.
    pub async fn pods(&mut self, ns: &str, svc: &str, port_name: &str, container_port: u16, n: usize) -> Vec<String> {
        let mut names = Vec::new();
        for i in 0..n {
            let name = format!("{svc}-{i}");
            self.pod(ns, svc, &name, container_port).await;
            names.push(name);
        }
        let ready: Vec<(&str, bool)> = names.iter().map(|n| (n.as_str(), true)).collect();
        self.endpoints(ns, svc, port_name, container_port, &ready);
        names
    }

    /// Starts one pod server and creates its Pod object.
    pub async fn pod(&mut self, ns: &str, svc: &str, name: &str, container_port: u16) {
        let server = PodServer::start(name).await;
        self.api.set_backend(ns, name, container_port, server.addr);
        self.api.apply(
            PODS,
            json!({"metadata": {"name": name, "namespace": ns, "labels": {"app": svc}},
                   "spec": {"containers": [{"name": "app", "image": "fake",
                            "ports": [{"name": "http", "containerPort": container_port}]}]},
                   "status": {"phase": "Running"}}),
        );
        self.pods.push(server);
    }

    /// Writes the Service's EndpointSlice with `(pod, ready)` endpoints.
    pub fn endpoints(&self, ns: &str, svc: &str, port_name: &str, container_port: u16, eps: &[(&str, bool)]) {
        self.endpoint_slice(ns, svc, &format!("{svc}-abcde"), port_name, container_port, eps);
    }

    /// Writes one EndpointSlice `slice` of the Service (a named targetPort
    /// that differs from pod to pod takes one slice per port number).
    pub fn endpoint_slice(
        &self,
        ns: &str,
        svc: &str,
        slice: &str,
        port_name: &str,
        container_port: u16,
        eps: &[(&str, bool)],
    ) {
        let endpoints: Vec<Value> = eps
            .iter()
            .enumerate()
            .map(|(i, (pod, ready))| {
                json!({"addresses": [format!("10.244.0.{}", i + 2)],
                       "conditions": {"ready": ready, "serving": ready, "terminating": false},
                       "targetRef": {"kind": "Pod", "namespace": ns, "name": pod},
                       "nodeName": "fake-node"})
            })
            .collect();
        let mut port = json!({"port": container_port, "protocol": "TCP"});
        port["name"] = json!(port_name);
        self.api.apply(
            ENDPOINT_SLICES,
            json!({"metadata": {"name": slice, "namespace": ns,
                                "labels": {"kubernetes.io/service-name": svc,
                                           "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
                   "addressType": "IPv4", "endpoints": endpoints, "ports": [port]}),
        );
    }

    /// One step of a Deployment's rolling update of Service `svc` (port
    /// `port`, one EndpointSlice): pod `new` starts and is ready beside
    /// `current`; 150 ms later the oldest of `current` turns not-ready
    /// (terminating); 300 ms later it leaves the endpoints and `new` joins
    /// `current`. Returns the old pod's server, taken out of `pods`: the
    /// caller says when its process stops and its Pod object goes.
    pub async fn roll_one(
        &mut self,
        ns: &str,
        svc: &str,
        port: u16,
        current: &mut Vec<String>,
        new: &str,
    ) -> PodServer {
        let write = |c: &Self, eps: &[(String, bool)]| {
            let view: Vec<(&str, bool)> = eps.iter().map(|(p, r)| (p.as_str(), *r)).collect();
            c.endpoints(ns, svc, "", port, &view);
        };
        self.pod(ns, svc, new, port).await;
        let mut eps: Vec<(String, bool)> = current.iter().map(|p| (p.clone(), true)).collect();
        eps.push((new.to_string(), true));
        write(self, &eps);
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let old = current.remove(0);
        eps.iter_mut().filter(|(p, _)| *p == old).for_each(|e| e.1 = false);
        write(self, &eps);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        eps.retain(|(p, _)| *p != old);
        write(self, &eps);
        current.push(new.to_string());
        let i = self.pods.iter().position(|p| p.name == old).expect("the old pod's server");
        self.pods.remove(i)
    }

    /// A `type: LoadBalancer` Service `name` in `ns` with `ports` (Service
    /// port objects), created at `created` (RFC 3339) so that tests can
    /// order Services by age.
    pub fn lb_service(&self, ns: &str, name: &str, created: &str, ports: Value) {
        self.api.apply(
            SERVICES,
            json!({"metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
                   "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": ports}}),
        );
    }

    /// Starts a raw TCP pod server `name` for Service `svc` on
    /// `container_port` and creates its Pod object (not its endpoints).
    pub async fn tcp_pod(&mut self, ns: &str, svc: &str, name: &str, container_port: u16) {
        let server = TcpPodServer::start(name).await;
        self.server_pod(ns, svc, name, container_port, server.addr);
        self.tcp_pods.push(server);
    }

    /// Creates the Pod object `name` of Service `svc`, whose
    /// `container_port` is a server already listening at `addr` (a real
    /// program such as redis-server).
    pub fn server_pod(&self, ns: &str, svc: &str, name: &str, container_port: u16, addr: std::net::SocketAddr) {
        self.api.set_backend(ns, name, container_port, addr);
        self.api.apply(
            PODS,
            json!({"metadata": {"name": name, "namespace": ns, "labels": {"app": svc}},
                   "spec": {"containers": [{"name": "app", "image": "fake",
                            "ports": [{"name": "tcp", "containerPort": container_port}]}]}}),
        );
    }

    /// Creates or updates an Ingress from its spec.
    pub fn ingress(&self, ns: &str, name: &str, spec: Value) {
        self.api.apply(INGRESSES, json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}));
    }

    /// The examples: alpaca, bandicoot and be-default Services, one
    /// pod each (two for alpaca), and the two Ingresses.
    pub async fn examples(&mut self) {
        for svc in ["alpaca", "bandicoot", "be-default"] {
            self.service("default", svc, "", 8080, json!(8080));
        }
        self.pods("default", "alpaca", "", 8080, 2).await;
        self.pods("default", "bandicoot", "", 8080, 1).await;
        self.pods("default", "be-default", "", 8080, 1).await;
        self.ingress(
            "default",
            "host-ingress",
            json!({"defaultBackend": {"service": {"name": "be-default", "port": {"number": 8080}}},
                   "rules": [{"host": "alpaca.example.com", "http": {"paths": [
                       {"pathType": "Prefix", "path": "/", "backend": {"service": {"name": "alpaca", "port": {"number": 8080}}}}]}}]}),
        );
        self.ingress(
            "default",
            "path-ingress",
            json!({"rules": [{"host": "bandicoot.example.com", "http": {"paths": [
                {"pathType": "Prefix", "path": "/", "backend": {"service": {"name": "bandicoot", "port": {"number": 8080}}}},
                {"pathType": "Prefix", "path": "/a/", "backend": {"service": {"name": "alpaca", "port": {"number": 8080}}}}]}}]}),
        );
    }
}
