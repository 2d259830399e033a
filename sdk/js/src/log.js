// Log lines attributed to this plugin: to the host's log inside the sandbox
// (bounded per evaluation), to the console natively.

let host;

/** Routes log lines to the host: called by the component glue, never by a policy. */
export function bindHost(hostModule) {
  host = hostModule;
}

function write(level, message) {
  if (host) host.log(level, String(message));
  else console.error(`[${level}] ${message}`);
}

export const log = Object.freeze({
  debug: (message) => write('debug', message),
  info: (message) => write('info', message),
  warn: (message) => write('warn', message),
  error: (message) => write('error', message),
});
