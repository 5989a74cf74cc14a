// JSON requests to the API of a stack the end-to-end files start (scripts/stack.ts), as a merchant.

// Loose on purpose: the assertions check the shapes.
export type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export async function callApi(
  baseUrl: string,
  key: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Json };
}
