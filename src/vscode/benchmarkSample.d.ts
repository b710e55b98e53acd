// The benchmark's source file, bundled as text by esbuild.mjs (plugin benchmark-sample).
declare module 'benchmark-sample' {
  const text: string;
  export default text;
}
