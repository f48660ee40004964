"""The one seam to google-genai: every call to the service, its retry policy and the never-blindly-repeated job
creation (`gemini`, the Gemini API backend; a Vertex backend goes next to it), synchronous generateContent for
sync mode and calibration (`sync`), and SDK response objects back in the results-file line shape (`responses`).
Nothing above imports `google.genai` except its `types`."""
