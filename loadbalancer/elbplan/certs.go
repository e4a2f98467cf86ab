package elbplan

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/sacloud/iaas-api-go"
)

// MaxAdditionalCerts is how many certificates an ELB serves by SNI beside
// its primary one.
const MaxAdditionalCerts = 20

// CertSource is one certificate as a kubernetes.io/tls Secret holds it:
// tls.crt is the server certificate followed by its intermediates, tls.key
// the private key. Source names it in messages (namespace/name).
type CertSource struct {
	Source string
	Chain  []byte
	Key    []byte
}

// CertError says what is wrong with one source. It never carries the key
// or the certificate's bytes: messages reach Events and logs.
type CertError struct {
	Source  string
	Problem string
}

func (e *CertError) Error() string { return fmt.Sprintf("TLS Secret %s: %s", e.Source, e.Problem) }

// Cert is one certificate ready to be set on an ELB.
type Cert struct {
	Source       string
	Server       string // PEM, one certificate
	Intermediate string // PEM, zero or more certificates
	key          string // PEM; unexported so that %v of a Cert never shows it
	CommonName   string
}

// Certificates checks the sources (the first is the primary certificate,
// the others are served by SNI) and returns them ready to set, or every
// problem at once. The key must belong to the first certificate of its
// chain; crypto/tls decides, as a TLS server would.
func Certificates(sources []CertSource) ([]Cert, []error) {
	var out []Cert
	var errs []error
	if n := len(sources) - 1; n > MaxAdditionalCerts {
		errs = append(errs, &CertError{Source: sources[len(sources)-1].Source, Problem: fmt.Sprintf("an Enhanced Load Balancer serves at most %d certificates beside its primary one, got %d", MaxAdditionalCerts, n)})
	}
	for _, s := range sources {
		c, err := certificate(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, c)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

func certificate(s CertSource) (Cert, error) {
	bad := func(problem string) (Cert, error) { return Cert{}, &CertError{Source: s.Source, Problem: problem} }
	if len(bytes.TrimSpace(s.Chain)) == 0 {
		return bad("tls.crt is empty")
	}
	if len(bytes.TrimSpace(s.Key)) == 0 {
		return bad("tls.key is empty")
	}
	var blocks []*pem.Block
	rest := s.Chain
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return bad(fmt.Sprintf("tls.crt holds a PEM block of type %q; only certificates belong there", b.Type))
		}
		blocks = append(blocks, b)
	}
	if len(blocks) == 0 {
		return bad("tls.crt holds no PEM certificate")
	}
	leaf, err := x509.ParseCertificate(blocks[0].Bytes)
	if err != nil {
		return bad("the first certificate of tls.crt cannot be parsed")
	}
	for i, b := range blocks[1:] {
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return bad(fmt.Sprintf("intermediate certificate %d of tls.crt cannot be parsed", i+1))
		}
	}
	if _, err := tls.X509KeyPair(pem.EncodeToMemory(blocks[0]), s.Key); err != nil {
		// X509KeyPair's messages name the problem, never the key.
		return bad("tls.key does not fit the first certificate of tls.crt (" + err.Error() + ")")
	}
	var inter strings.Builder
	for _, b := range blocks[1:] {
		inter.Write(pem.EncodeToMemory(b))
	}
	return Cert{Source: s.Source, Server: string(pem.EncodeToMemory(blocks[0])), Intermediate: inter.String(), key: string(s.Key), CommonName: leaf.Subject.CommonName}, nil
}

// SetCertificatesRequest is the body that makes want the ELB's
// certificates: want[0] primary, the others additional.
func SetCertificatesRequest(want []Cert) *iaas.ProxyLBSetCertificatesRequest {
	req := &iaas.ProxyLBSetCertificatesRequest{}
	for i, c := range want {
		if i == 0 {
			req.PrimaryCerts = &iaas.ProxyLBPrimaryCert{ServerCertificate: c.Server, IntermediateCertificate: c.Intermediate, PrivateKey: c.key}
			continue
		}
		req.AdditionalCerts = append(req.AdditionalCerts, &iaas.ProxyLBAdditionalCert{ServerCertificate: c.Server, IntermediateCertificate: c.Intermediate, PrivateKey: c.key})
	}
	return req
}

// CertificatesDiffer reports whether have (GetCertificates) serves other
// certificates than want, in order. Certificates are compared by their
// DER bytes, so PEM line wrapping or spacing never causes a write; keys are
// not compared (the API does not give them back), and a new key always
// comes with a new certificate.
func CertificatesDiffer(want []Cert, have *iaas.ProxyLBCertificates) bool {
	type pair struct{ server, inter string }
	var got []pair
	if have != nil && have.PrimaryCert != nil && strings.TrimSpace(have.PrimaryCert.ServerCertificate) != "" {
		got = append(got, pair{have.PrimaryCert.ServerCertificate, have.PrimaryCert.IntermediateCertificate})
		for _, a := range have.AdditionalCerts {
			if a != nil {
				got = append(got, pair{a.ServerCertificate, a.IntermediateCertificate})
			}
		}
	}
	if len(got) != len(want) {
		return true
	}
	for i, w := range want {
		if !sameDER(w.Server, got[i].server) || !sameDER(w.Intermediate, got[i].inter) {
			return true
		}
	}
	return false
}

// sameDER compares the certificates of two PEM texts.
func sameDER(a, b string) bool {
	da, db := ders(a), ders(b)
	if len(da) != len(db) {
		return false
	}
	for i := range da {
		if !bytes.Equal(da[i], db[i]) {
			return false
		}
	}
	return true
}

func ders(text string) [][]byte {
	var out [][]byte
	rest := []byte(text)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		out = append(out, b.Bytes)
	}
}
