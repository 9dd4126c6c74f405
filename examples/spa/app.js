// Signs in at the issuer (authorization code + PKCE S256, done by oidc-client-ts), calls a
// replica's /me with the access token, refreshes it with the refresh token, and signs out at
// the issuer's end_session_endpoint (OpenID RP-Initiated Logout). `oidc` is the global of
// oidc-client-ts's browser build; /config.json is written by serve.py.
const config = await (await fetch("/config.json")).json();
const users = new oidc.UserManager({
  authority: config.issuer,
  client_id: config.client_id, // a public client: no secret in a browser
  redirect_uri: `${location.origin}/callback`,
  post_logout_redirect_uri: `${location.origin}/`,
  scope: config.scope,
  loadUserInfo: true, // the name shown comes from /userinfo
});

const $ = (id) => document.getElementById(id);

async function callMe(user) {
  const response = await fetch(`${config.api}/me`, { headers: { Authorization: `Bearer ${user.access_token}` } });
  // A refusal is readable too: the replica exposes WWW-Authenticate to this origin (RFC 6750 section 3).
  $("me").textContent = response.ok
    ? JSON.stringify(await response.json(), null, 2)
    : `${response.status}: ${response.headers.get("WWW-Authenticate")}`;
}

async function show() {
  const user = await users.getUser();
  const signedIn = user !== null && !user.expired;
  document.body.dataset.state = signedIn ? "signed-in" : "signed-out";
  $("status").textContent = signedIn ? `Signed in as ${user.profile.preferred_username ?? user.profile.sub}` : "Signed out";
  $("signin").hidden = signedIn;
  $("refresh").hidden = $("signout").hidden = !signedIn;
  if (signedIn) await callMe(user);
  else $("me").textContent = "(not called)";
}

async function run(step) {
  $("error").textContent = "";
  try {
    await step();
  } catch (error) {
    $("error").textContent = `${error.name}: ${error.message}`;
  }
}

$("signin").onclick = () => run(() => users.signinRedirect());
$("refresh").onclick = () => run(async () => { await users.signinSilent(); await show(); }); // refresh_token grant
$("signout").onclick = () => run(() => users.signoutRedirect()); // ends the issuer session: its tokens are revoked

await run(async () => {
  try {
    if (location.pathname === "/callback") await users.signinRedirectCallback(); // checks state, trades code + verifier
    else if (new URLSearchParams(location.search).has("state")) await users.signoutRedirectCallback();
  } finally {
    history.replaceState(null, "", "/"); // no code or state left in the address bar
    await show();
  }
});
