// One self-contained HTML file, so the report opens from disk without a web server.
export default {
  name: "platform-conformance",
  plugins: {
    awesome: {
      options: {
        singleFile: true,
        reportLanguage: "en",
      },
    },
  },
};
