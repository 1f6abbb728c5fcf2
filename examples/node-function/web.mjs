// Netlify Functions v2: the web-standard shape, a default export in a file
// with no `handler` export (Netlify runs a `handler` export as v1 when one
// is there: see handler.mjs for Lambda, Netlify v1 and Vercel).
import { POST } from "./handler.mjs";

export default POST;
