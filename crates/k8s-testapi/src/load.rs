//! A synthetic cluster for load measurements: N Services with M endpoints in
//! total, in EndpointSlices of at most 100 endpoints (the endpointslice
//! controller's default `--max-endpoints-per-slice`), and one endpoint
//! changed at a time to make watch traffic.
//!
//! Endpoint addresses are in 127.0.0.0/8 on purpose: a proxy under test that
//! connects to one only ever reaches this machine.

use crate::objects::{self, Endpoint, ServicePort, TargetPort};
use crate::ApiServer;

/// The controller's default cap on endpoints per slice.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// The cluster's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadShape {
    pub namespace: String,
    pub services: usize,
    /// Endpoints in total, spread evenly over the services.
    pub endpoints: usize,
}

impl Default for LoadShape {
    fn default() -> LoadShape {
        LoadShape { namespace: "loadtest".to_string(), services: 1_000, endpoints: 10_000 }
    }
}

/// One EndpointSlice as the generator keeps it, to rebuild it after a change.
#[derive(Debug, Clone)]
struct SliceModel {
    name: String,
    service: String,
    endpoints: Vec<Endpoint>,
}

/// The generated cluster; `churn_one` changes it one endpoint at a time.
#[derive(Debug)]
pub struct LoadCluster {
    namespace: String,
    service_names: Vec<String>,
    slices: Vec<SliceModel>,
    /// Counts changes, to walk every slice and endpoint in turn.
    changes: usize,
}

/// The port every generated Service and slice has.
const PORT_NAME: &str = "http";
const SERVICE_PORT: u16 = 80;
const CONTAINER_PORT: u16 = 8080;

impl LoadCluster {
    /// Builds the objects (without applying them).
    pub fn generate(shape: &LoadShape) -> LoadCluster {
        let mut service_names = Vec::with_capacity(shape.services);
        let mut slices = Vec::new();
        let mut next_endpoint = 0usize;
        for service_index in 0..shape.services {
            let service = format!("svc-{service_index:05}");
            // Spread the remainder over the first services.
            let count = shape.endpoints / shape.services.max(1)
                + usize::from(service_index < shape.endpoints % shape.services.max(1));
            let endpoints: Vec<Endpoint> = (next_endpoint..next_endpoint + count).map(endpoint).collect();
            next_endpoint += count;
            for (slice_index, chunk) in endpoints.chunks(MAX_ENDPOINTS_PER_SLICE).enumerate() {
                slices.push(SliceModel {
                    name: slice_name(&service, slice_index),
                    service: service.clone(),
                    endpoints: chunk.to_vec(),
                });
            }
            service_names.push(service);
        }
        LoadCluster { namespace: shape.namespace.clone(), service_names, slices, changes: 0 }
    }

    pub fn service_count(&self) -> usize {
        self.service_names.len()
    }

    pub fn slice_count(&self) -> usize {
        self.slices.len()
    }

    pub fn endpoint_count(&self) -> usize {
        self.slices.iter().map(|slice| slice.endpoints.len()).sum()
    }

    /// The Service objects.
    pub fn service_objects(&self) -> impl Iterator<Item = serde_json::Value> + '_ {
        self.service_names.iter().map(|name| {
            let port =
                ServicePort { name: Some(PORT_NAME), port: SERVICE_PORT, target_port: TargetPort::Name(PORT_NAME) };
            objects::service(&self.namespace, name, &[port])
        })
    }

    /// The EndpointSlice objects.
    pub fn slice_objects(&self) -> impl Iterator<Item = serde_json::Value> + '_ {
        self.slices.iter().map(|slice| self.slice_object(slice))
    }

    fn slice_object(&self, slice: &SliceModel) -> serde_json::Value {
        objects::endpoint_slice(
            &self.namespace,
            &slice.name,
            &slice.service,
            &[(Some(PORT_NAME), CONTAINER_PORT)],
            &slice.endpoints,
        )
    }

    /// Applies every Service and slice.
    pub fn apply_all(&self, server: &ApiServer) {
        for service in self.service_objects() {
            server.apply(service);
        }
        for slice in self.slice_objects() {
            server.apply(slice);
        }
    }

    /// Flips one endpoint between ready and not ready (pod readiness
    /// flapping), walking the slices round-robin, and applies its slice.
    pub fn churn_one(&mut self, server: &ApiServer) {
        if self.slices.is_empty() {
            return;
        }
        let slice_index = self.changes % self.slices.len();
        let round = self.changes / self.slices.len();
        self.changes += 1;
        let slice = &mut self.slices[slice_index];
        if slice.endpoints.is_empty() {
            return;
        }
        let endpoint_index = round % slice.endpoints.len();
        let endpoint = &mut slice.endpoints[endpoint_index];
        endpoint.ready = !endpoint.ready;
        endpoint.serving = endpoint.ready;
        let object = self.slice_object(&self.slices[slice_index]);
        server.apply(object);
    }
}

/// The i-th endpoint: a loopback address, spread over 20 nodes and 3 zones.
fn endpoint(index: usize) -> Endpoint {
    let address = format!("127.{}.{}.{}", 1 + (index >> 16) % 254, (index >> 8) & 0xff, index & 0xff);
    Endpoint::ready(&address)
        .on_node(&format!("node-{}", index % 20))
        .in_zone(["zone-a", "zone-b", "zone-c"][index % 3])
}

/// `<service>-<5 chars>`, like the controller's generated names.
fn slice_name(service: &str, slice_index: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bits = crate::clock::hash_str(&format!("{service}/{slice_index}"));
    let suffix: String = (0..5)
        .map(|_| {
            let symbol = ALPHABET[(bits % ALPHABET.len() as u64) as usize] as char;
            bits /= ALPHABET.len() as u64;
            symbol
        })
        .collect();
    format!("{service}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_endpoints_in_slices_of_at_most_100() {
        let cluster = LoadCluster::generate(&LoadShape { namespace: "t".into(), services: 3, endpoints: 250 });
        assert_eq!(cluster.service_count(), 3);
        assert_eq!(cluster.endpoint_count(), 250);
        // 84 + 83 + 83: one slice each.
        assert_eq!(cluster.slice_count(), 3);
        let big = LoadCluster::generate(&LoadShape { namespace: "t".into(), services: 2, endpoints: 450 });
        assert_eq!(big.slice_count(), 6, "225 endpoints per service make 3 slices each");
        assert!(big.slices.iter().all(|slice| slice.endpoints.len() <= MAX_ENDPOINTS_PER_SLICE));
        let names: std::collections::BTreeSet<_> = big.slices.iter().map(|slice| slice.name.clone()).collect();
        assert_eq!(names.len(), 6, "slice names are unique");
    }

    #[test]
    fn addresses_are_loopback_and_unique() {
        let addresses: std::collections::BTreeSet<String> =
            (0..70_000).map(|index| endpoint(index).addresses[0].clone()).collect();
        assert_eq!(addresses.len(), 70_000);
        assert!(addresses.iter().all(|address| address.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())));
    }
}
