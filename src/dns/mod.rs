//! The DNS server (hickory-server) that answers for served hosts with
//! 127.0.0.1 and ::1, on loopback only, following the routing table live.

mod answer;

pub use answer::{Answer, answer};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record};
use hickory_proto::serialize::binary::{BinDecoder, BinEncodable, BinEncoder, NameEncoding};
use hickory_server::Server;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

use crate::routes::RouteTable;

/// The default port. Not 53 (a local stub resolver, such as
/// systemd-resolved on 127.0.0.53, or dnsmasq, often has it, and it needs
/// privileges), not 5353 (mDNS) nor 5355 (LLMNR): 10053 is unprivileged and
/// reads as "DNS".
pub const DEFAULT_PORT: u16 = 10053;

/// Answers are short-lived: routes change while developers work.
const TTL: u32 = 5;

/// Answers queries from the current routing table.
pub struct DnsHandler {
    table: watch::Receiver<Arc<RouteTable>>,
}

impl DnsHandler {
    /// A handler reading `table`.
    pub fn new(table: watch::Receiver<Arc<RouteTable>>) -> Self {
        DnsHandler { table }
    }
}

/// The request's questions for the response, written out again from what
/// was decoded, without name compression. hickory-server echoes the
/// question section byte for byte as the client sent it; a compression
/// pointer there into the header (whose flags differ in the response) or
/// past the questions made the response read as another name, or not at
/// all (found by the `dns_query` fuzz target).
fn echoed_queries(request: &Request) -> Queries {
    let queries = request.queries.queries();
    let mut bytes = Vec::new();
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    let none = || Queries::read(&mut BinDecoder::new(&[]), 0).expect("no questions read from nothing");
    match queries.iter().try_for_each(|q| q.emit(&mut encoder)) {
        Ok(()) => Queries::read(&mut BinDecoder::new(&bytes), queries.len()).unwrap_or_else(|_| none()),
        Err(_) => none(),
    }
}

/// What the server records when a response could not be sent.
fn send_failed(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::new(request.metadata.id, MessageType::Response, request.metadata.op_code);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler, T: hickory_server::net::runtime::Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let queries = echoed_queries(request);
        let builder = MessageResponseBuilder::new(&queries, None);
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = false;
        let queries = request.queries.queries();
        let error = if request.metadata.message_type != MessageType::Query {
            Some(ResponseCode::FormErr)
        } else if request.metadata.op_code != OpCode::Query {
            Some(ResponseCode::NotImp)
        } else if queries.len() != 1 {
            Some(ResponseCode::FormErr)
        } else {
            None
        };
        if let Some(code) = error {
            let response = builder.error_msg(&request.metadata, code);
            return response_handle.send_response(response).await.unwrap_or_else(|_| send_failed(request));
        }
        let query = &queries[0];
        let name: Name = query.name().into();
        let table = self.table.borrow().clone();
        let records: Vec<Record> = match answer(&table, &name.to_ascii(), query.query_type()) {
            Answer::Addresses(ips) => {
                metadata.authoritative = true;
                ips.into_iter()
                    .map(|ip| match ip {
                        IpAddr::V4(v4) => Record::from_rdata(name.clone(), TTL, RData::A(A(v4))),
                        IpAddr::V6(v6) => Record::from_rdata(name.clone(), TTL, RData::AAAA(AAAA(v6))),
                    })
                    .collect()
            }
            Answer::NoData => {
                metadata.authoritative = true;
                Vec::new()
            }
            Answer::NxDomain => {
                metadata.authoritative = true;
                metadata.response_code = ResponseCode::NXDomain;
                Vec::new()
            }
            Answer::Refused => {
                metadata.response_code = ResponseCode::Refused;
                Vec::new()
            }
        };
        let response = builder.build(metadata, records.iter(), [], [], []);
        response_handle.send_response(response).await.unwrap_or_else(|_| send_failed(request))
    }
}

/// Why the DNS server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The port is taken or forbidden.
    #[error("cannot serve DNS on {addr}: {source}; choose another port with --dns-port, or --no-dns")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A running DNS server; dropping it stops it.
pub struct DnsServer {
    _server: Server<DnsHandler>,
    /// The addresses it answers on (UDP and TCP each).
    pub addrs: Vec<SocketAddr>,
}

/// Serves DNS on 127.0.0.1 (and ::1 when the machine has IPv6) at `port`
/// (0: any free port, the same for both), over UDP and TCP.
pub async fn serve(port: u16, table: watch::Receiver<Arc<RouteTable>>) -> Result<DnsServer, DnsError> {
    let mut server = Server::new(DnsHandler::new(table));
    let (udp, tcp, v4) = bind_pair(port).await?;
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(10), 64);
    let mut addrs = vec![v4];
    let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), v4.port());
    if let (Ok(udp), Ok(tcp)) = (UdpSocket::bind(v6).await, TcpListener::bind(v6).await) {
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(10), 64);
        addrs.push(v6);
    }
    Ok(DnsServer { _server: server, addrs })
}

/// A UDP socket and a TCP listener on the same loopback port. With port 0
/// the UDP port is chosen first; when its TCP twin is taken, another is tried.
async fn bind_pair(port: u16) -> Result<(UdpSocket, TcpListener, SocketAddr), DnsError> {
    let mut attempts = if port == 0 { 20 } else { 1 };
    loop {
        let want = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let udp = UdpSocket::bind(want).await.map_err(|source| DnsError::Bind { addr: want, source })?;
        let addr = udp.local_addr().map_err(|source| DnsError::Bind { addr: want, source })?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp, addr)),
            Err(source) => {
                attempts -= 1;
                if attempts == 0 {
                    return Err(DnsError::Bind { addr, source });
                }
            }
        }
    }
}
