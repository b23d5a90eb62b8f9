// The regulator API over fetch: the bearer token from sessionStorage on every call, a time
// bound, and every failure as an ApiError carrying the API's own message and request id.

const TOKEN_KEY = "fueltrace.token";
export const TIMEOUT_S = 30;
/** Reports (a year's inspection, a recall with every sale, CSV exports) may take the
 * server's report bound (FUELTRACE_API_REPORT_TIMEOUT_S, 120 s by default). */
export const REPORT_TIMEOUT_S = 130;

export class ApiError extends Error {
  constructor(status, code, message, requestId = null, details = []) {
    super(message);
    this.status = status; // 0: no answer (timeout or network)
    this.code = code;
    this.requestId = requestId;
    this.details = details;
  }
}

let onUnauthorized = () => {};

export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function url(path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== "" && v !== false) query.set(k, String(v));
  }
  const text = query.toString();
  return `/api/v1${path}${text ? `?${text}` : ""}`;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const info = body && body.error ? body.error : {};
  return new ApiError(response.status, info.code || "http_error",
    info.message || response.statusText || `HTTP ${response.status}`,
    info.request_id || response.headers.get("x-request-id"), info.details || []);
}

/** Call the API: `path` under /api/v1, `params` as the query, `body` as JSON. Returns the
 * parsed JSON, or with `raw` the Response (for downloads). */
export async function api(path, {
  method = "GET", params = null, body = null, raw = false, timeoutS = TIMEOUT_S,
} = {}) {
  const token = getToken();
  const headers = { Accept: raw ? "*/*" : "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== null) headers["Content-Type"] = "application/json";
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutS * 1000);
  const timedOut = () => {
    const error = new ApiError(0, "timeout", `no answer within ${timeoutS} s`);
    error.timeoutS = timeoutS;
    return error;
  };
  try {
    let response;
    try {
      response = await fetch(url(path, params), {
        method, headers, body: body === null ? undefined : JSON.stringify(body),
        signal: controller.signal, cache: "no-store",
      });
    } catch (exc) {
      if (exc.name === "AbortError") throw timedOut();
      throw new ApiError(0, "network", String(exc.message || exc));
    }
    if (!response.ok) {
      const error = await errorOf(response);
      if (response.status === 401) onUnauthorized(error);
      throw error;
    }
    if (raw) {
      const blob = await response.blob();
      return { blob, response };
    }
    return await response.json();
  } catch (exc) {
    if (exc instanceof ApiError) throw exc;
    if (exc.name === "AbortError") throw timedOut();
    throw new ApiError(0, "network", String(exc.message || exc));
  } finally {
    clearTimeout(timer);
  }
}

/** Download what `path` answers (a CSV) as a file, with the bearer token. */
export async function download(path, params, fallbackName) {
  const { blob, response } = await api(path, { params, raw: true, timeoutS: REPORT_TIMEOUT_S });
  const disposition = response.headers.get("content-disposition") || "";
  const match = disposition.match(/filename="?([^";]+)"?/);
  const name = match ? match[1] : fallbackName;
  const href = URL.createObjectURL(blob);
  const anchor = document.createElement("a");
  anchor.href = href;
  anchor.download = name;
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10000);
  return name;
}
