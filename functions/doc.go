// Package functions runs a Netherite host inside an Azure Functions custom
// handler.
//
// The Functions host starts the custom handler executable (host.json,
// section customHandler), passes it the port to listen on in
// FUNCTIONS_CUSTOMHANDLER_PORT (see [Address]) and its app settings as
// environment variables (see [LoadSettings]), and then calls it over HTTP in
// one of two ways, both of which the handler returned by [NewHandler]
// answers:
//
//   - Invocation payloads. For every function call the host POSTs
//     /{functionName} with a JSON body {"Data": {...}, "Metadata": {...}}.
//     For an HTTP-triggered function, Data holds the trigger binding (named
//     by function.json, usually "req") as an object with Url, Method, Query,
//     Headers, Params, Identities and Body. The adapter rebuilds the original
//     request from it, serves it with the application handler, and answers
//     {"Outputs": {"res": {"statusCode": ..., "body": ..., "headers":
//     {...}}}, "Logs": [...], "ReturnValue": ...}.
//   - Forwarded requests. With "enableForwardingHttpRequest": true (or the
//     newer "enableProxyingHttpRequest": true) in host.json, the host sends
//     functions that have only an HTTP trigger and an HTTP output the
//     original request itself, at its original path (/api/...). The adapter
//     passes it to the application handler.
//
// The Functions host owns /runtime/webhooks/... and /admin/..., so a custom
// handler cannot publish the Durable Functions management API at its usual
// path. The templates publish it at /api/durabletask/... instead, and the
// adapter maps public path prefixes to the application's (by default
// /api/durabletask → /runtime/webhooks/durabletask and /api/healthz →
// /healthz, see [DefaultPrefixes]). URLs that the application puts in
// Location headers and JSON or text bodies (statusQueryGetUri and friends)
// are mapped back to the public prefix, scheme and host.
//
// The templates are in the template/ folder, a complete app ready for
// `func azure functionapp publish` in sample/; README.md describes the
// settings and the deployment.
package functions
