//! Certificates for the tests: a CA of their own that issues server and
//! client certificates (CN = user, O = groups), valid or expired.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// The OID of O, under which rcgen takes a second organization.
const ORGANIZATION: [u64; 4] = [2, 5, 4, 10];

/// A test CA, with its certificate written to `dir/NAME-ca.pem`.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
    pub file: PathBuf,
    dir: PathBuf,
}

/// A certificate and its key, written as `NAME.pem` and `NAME-key.pem`.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    /// A new CA named `name`, its files in `dir`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(
            DnType::CommonName,
            format!("{name} {:016x}", fastrand::u64(..)),
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&file, cert.pem()).unwrap();
        TestCa {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
            file,
            dir: dir.to_owned(),
        }
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self, name: &str) -> Issued {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.subject_alt_names = vec![
            SanType::DnsName("localhost".try_into().unwrap()),
            SanType::IpAddress("127.0.0.1".parse().unwrap()),
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(name, params)
    }

    /// A client certificate of user `cn` in `groups`.
    pub fn client(&self, name: &str, cn: &str, groups: &[&str]) -> Issued {
        self.client_valid(name, cn, groups, Validity::Now)
    }

    /// A client certificate, valid now or expired yesterday.
    pub fn client_valid(&self, name: &str, cn: &str, groups: &[&str], valid: Validity) -> Issued {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        for (i, group) in groups.iter().enumerate() {
            let kind = match i {
                0 => DnType::OrganizationName,
                _ => DnType::CustomDnType(ORGANIZATION.to_vec()),
            };
            params.distinguished_name.push(kind, *group);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if valid == Validity::Expired {
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - Duration::from_secs(2 * 86_400);
            params.not_after = now - Duration::from_secs(86_400);
        }
        self.issue(name, params)
    }

    fn issue(&self, name: &str, mut params: CertificateParams) -> Issued {
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let issued = Issued {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}-key.pem")),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        std::fs::write(&issued.cert, &issued.cert_pem).unwrap();
        std::fs::write(&issued.key, &issued.key_pem).unwrap();
        issued
    }
}

/// Whether a certificate is valid now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    Now,
    Expired,
}
