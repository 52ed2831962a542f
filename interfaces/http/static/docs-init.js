// PromptForge's Swagger UI initializer, a file rather than an inline script so that the page's
// Content-Security-Policy allows scripts from 'self' only. The page passes its URLs as data attributes.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: "none",
    presets: [SwaggerUIBundle.presets.apis]
  });
})();
