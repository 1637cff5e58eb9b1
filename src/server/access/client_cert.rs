//! `--client-ca-file`: the user of a verified client certificate, as
//! kube-apiserver takes it: the subject's common name (CN) is the user, its
//! organizations (O) are the groups.
//!
//! rustls has verified the chain against the CA (and the validity dates)
//! during the handshake, so a certificate seen here is trusted; a
//! certificate of another CA, or an expired one, never got this far.

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::user::User;

/// The user of the connection's client certificate, if the client sent
/// one: `Err` if it names no user.
pub(super) fn user<B>(request: &http::Request<B>) -> Option<Result<User, String>> {
    let certs = request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()?
        .peer_certs()?;
    let leaf = certs.first()?;
    Some(user_of(leaf.as_ref()))
}

/// The user a DER certificate names.
pub(super) fn user_of(der: &[u8]) -> Result<User, String> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|err| format!("the client certificate cannot be read: {err}"))?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
        .ok_or("the client certificate's subject has no common name (CN) to be the user")?;
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_owned);
    let serial = cert.raw_serial_as_string();
    Ok(User::authenticated(name, &serial, groups))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::access::user::AUTHENTICATED;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    fn cert(names: &[(DnType, &str)]) -> Vec<u8> {
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        for (kind, value) in names {
            subject.push(kind.clone(), *value);
        }
        params.distinguished_name = subject;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_user_is_the_cn_and_the_groups_the_os() {
        let der = cert(&[
            (DnType::CommonName, "jane"),
            (DnType::OrganizationName, "dev"),
            // rcgen keeps one value a type: a second O under its OID.
            (DnType::CustomDnType(vec![2, 5, 4, 10]), "ops"),
        ]);
        let user = user_of(&der).unwrap();
        assert_eq!(user.name, "jane");
        assert_eq!(user.groups, ["dev", "ops", AUTHENTICATED]);
    }

    #[test]
    fn a_certificate_without_a_cn_names_nobody() {
        let der = cert(&[(DnType::OrganizationName, "dev")]);
        assert!(user_of(&der).unwrap_err().contains("no common name"));
    }
}
