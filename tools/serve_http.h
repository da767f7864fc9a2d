// serve_http.h - the HTTP side of `bitnet-gpu serve`, on libmicrohttpd: one
// thread per connection, bodies collected up to a limit, the API key checked,
// replies and server-sent event streams written, clients that leave noticed.
#ifndef BN_SERVE_HTTP_H
#define BN_SERVE_HTTP_H

#include "bitnet.h"
#include "serve_api.h"

#define BN_SERVE_MAX_BODY (1 << 20)   // bytes of a request body (413 above)
#define BN_SERVE_MAX_CONNECTIONS 256  // connections (threads) at once; more are refused

typedef struct bn_server bn_server;

typedef struct bn_server_config {
    const char *host;    // address to bind: "127.0.0.1", "0.0.0.0", "::1", ...
    int port;            // 0: any free port (*bound_port says which)
    const char *api_key; // NULL: none; else every request needs "Authorization: Bearer KEY"
    int timeout_s;       // a connection idle this long while sending its request is closed
} bn_server_config;

int bn_server_start(const bn_api *api, const bn_server_config *c, bn_server **out, int *bound_port,
                    bn_error *err);
// Stops accepting connections (the ones open still get their replies).
void bn_server_quiesce(bn_server *s);
// Closes every connection, joins their threads and frees s.
void bn_server_stop(bn_server *s);

#endif
