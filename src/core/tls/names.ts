/**
 * Names shared by the core and the extension (which must not load the certificate code):
 * the files of the local CA's folder, and the event code of a client rejecting our certificate.
 */
export const CA_FILE = 'ca.pem';
export const CA_KEY_FILE = 'ca-key.pem';
/** The system's roots plus ours, for tools whose variable replaces their trust store. */
export const CA_BUNDLE_FILE = 'ca-bundle.pem';
/** The extension hints at trusting the CA when it sees this code on an error event. */
export const CLIENT_REJECTED_CA = 'CLIENT_REJECTED_CA';
/** A client closed during the TLS handshake, without an alert: what Node and npm do when they reject the certificate. */
export const CLIENT_CLOSED_UNUSED = 'CLIENT_CLOSED_UNUSED';
