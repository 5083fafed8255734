package org.billable.conformance;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.parser.IParser;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationOptions;
import ca.uhn.fhir.validation.ValidationResult;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.regex.Pattern;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.PrePopulatedValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.UnknownCodeSystemWarningValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;
import org.hl7.fhir.instance.model.api.IBaseResource;

/**
 * The independent judge: HAPI FHIR's instance validator (R4 4.0.1 core definitions from
 * hapi-fhir-validation-resources-r4, CARIN BB STU2 from the shipped folder) over a corpus
 * that Billable produced.
 *
 * <p>Usage: {@code Judge <ig-folder> <manifest.json> <report.json>}. The manifest is a JSON
 * array of {@code {"path": "...", "profiles": ["canonical|version", ...], "terminology":
 * true, "validate": true}}, paths relative to the manifest's folder; entries marked {@code
 * terminology} (the code systems of Billable's own catalog) are loaded as terminology before
 * anything is validated, so that codes of those systems are checked rather than reported
 * unknown. An entry with {@code "validate": false} is terminology only: a complete release
 * (CPT, HCPCS: thousands of concepts) whose structure is judged on a prefix in another file,
 * because HAPI checks csd-1 (codes unique) pairwise. One JVM validates the whole corpus:
 * start-up (loading and indexing the core definitions) is paid once, and files are validated
 * on every core. Exit status: 0 when no file has an error, 1 when one has, 2 when the judge
 * itself could not run.
 *
 * <p>Only one kind of problem is tolerated: a code from a code system this validator has no
 * copy of (SNOMED CT, CPT, ICD-10-CM, HCPCS, X12, NUBC...), which it can only report as
 * unknown. Such messages are reported as warnings and counted apart; everything else keeps
 * the severity HAPI gives it.
 */
public final class Judge {
  private static final ObjectMapper JSON = new ObjectMapper();

  /** HAPI's wording when it cannot check a code because the code system is not loaded. */
  private static final List<Pattern> UNKNOWN_SYSTEM =
      List.of(
          Pattern.compile("(?i)CodeSystem is unknown and can't be validated"),
          Pattern.compile("(?i)Unknown code system"),
          Pattern.compile("(?i)A definition for CodeSystem '[^']*' could not be found"),
          Pattern.compile("(?i)unable to find code system"),
          Pattern.compile("(?i)The code system '[^']*' .*is not known"));

  private Judge() {}

  public static void main(String[] args) throws Exception {
    boolean wait = args.length == 4 && args[3].equals("--wait");
    if (args.length != 3 && !wait) {
      System.err.println("usage: Judge <ig-folder> <manifest.json> <report.json> [--wait]");
      System.exit(2);
    }
    Path ig = Path.of(args[0]);
    Path manifest = Path.of(args[1]);
    Path reportPath = Path.of(args[2]);

    long started = System.nanoTime();
    FhirContext ctx = FhirContext.forR4Cached();
    PrePopulatedValidationSupport billable = new PrePopulatedValidationSupport(ctx);
    ValidationSupportChain support = buildSupport(ctx, ig, billable);
    FhirValidator validator = buildValidator(ctx, support);
    IParser parser = ctx.newJsonParser();
    warmUp(validator, ctx, ig);
    long ready = System.nanoTime();
    if (wait) {
      // Started before the corpus exists, so that loading and warming up overlap with its
      // making: the caller writes a line on stdin once the manifest is complete.
      System.out.println("judge: ready");
      System.out.flush();
      new java.io.BufferedReader(new java.io.InputStreamReader(System.in, StandardCharsets.UTF_8))
          .readLine();
    }
    long go = System.nanoTime();

    JsonNode entries = JSON.readTree(manifest.toFile());
    Path root = manifest.toAbsolutePath().getParent();
    int catalog = 0;
    for (JsonNode entry : entries) {
      if (entry.path("terminology").asBoolean(false)) {
        String text = Files.readString(root.resolve(entry.get("path").asText()));
        billable.addResource(parser.parseResource(text));
        catalog++;
      }
    }
    ObjectNode report = JSON.createObjectNode();
    ArrayNode files = report.putArray("files");
    Map<String, Integer> errorsByType = new TreeMap<>();
    int total = 0;
    int errors = 0;
    int warnings = 0;
    int unknownSystem = 0;
    // Validate in parallel (the validator is thread-safe); report in manifest order.
    List<JsonNode> list = new ArrayList<>();
    for (JsonNode entry : entries) {
      if (entry.path("validate").asBoolean(true)) {
        list.add(entry);
      }
    }
    for (JsonNode entry : list) {
      for (JsonNode profile : entry.path("profiles")) {
        requireProfile(support, profile.asText());
      }
    }
    int threads = Math.max(1, Runtime.getRuntime().availableProcessors());
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    List<Future<Judged>> futures = new ArrayList<>();
    for (JsonNode entry : list) {
      futures.add(pool.submit(() -> judge(validator, ctx, root, entry)));
    }
    for (Future<Judged> future : futures) {
      Judged j = future.get();
      total++;
      ObjectNode out = files.addObject();
      out.put("path", j.path);
      out.put("resourceType", j.resourceType);
      out.put("seconds", j.seconds);
      ArrayNode issues = out.putArray("issues");
      int fileErrors = 0;
      for (SingleValidationMessage m : j.messages) {
        String severity = severityOf(m);
        if (severity.equals("information")) {
          continue;
        }
        boolean unknown = isUnknownSystem(m.getMessage());
        if (unknown) {
          severity = "warning";
          unknownSystem++;
        }
        if (severity.equals("error")) {
          fileErrors++;
        } else {
          warnings++;
        }
        ObjectNode issue = issues.addObject();
        issue.put("severity", severity);
        issue.put("location", m.getLocationString());
        issue.put("message", m.getMessage());
        issue.put("messageId", m.getMessageId());
        issue.put("unknownCodeSystem", unknown);
      }
      out.put("errors", fileErrors);
      errors += fileErrors;
      if (fileErrors > 0) {
        errorsByType.merge(j.resourceType, fileErrors, Integer::sum);
      }
    }
    pool.shutdown();
    long done = System.nanoTime();
    ObjectNode summary = report.putObject("summary");
    summary.put("files", total);
    summary.put("catalogCodeSystemsLoaded", catalog);
    summary.put("errors", errors);
    summary.put("warnings", warnings);
    summary.put("unknownCodeSystemWarnings", unknownSystem);
    summary.put("startupSeconds", (ready - started) / 1e9);
    summary.put("validationSeconds", (done - go) / 1e9);
    ObjectNode byType = summary.putObject("errorsByType");
    errorsByType.forEach(byType::put);
    JSON.writerWithDefaultPrettyPrinter().writeValue(reportPath.toFile(), report);
    System.out.printf(
        Locale.ROOT,
        "judge: %d files, %d errors, %d warnings (%d for unknown code systems);"
            + " start-up %.1f s, validation %.1f s%n",
        total,
        errors,
        warnings,
        unknownSystem,
        (ready - started) / 1e9,
        (done - go) / 1e9);
    System.exit(errors == 0 ? 0 : 1);
  }

  /**
   * Validates a minimal resource of the kinds that cost most the first time (an EOB against
   * each CARIN EOB profile of the IG folder, whose snapshots are generated then; a Claim; a
   * CapabilityStatement), so that HAPI's caches are filled before the corpus is judged. The
   * verdicts are discarded.
   */
  static void warmUp(FhirValidator validator, FhirContext ctx, Path ig) throws IOException {
    List<String> profiles = new ArrayList<>();
    try (DirectoryStream<Path> dir =
        Files.newDirectoryStream(ig, "StructureDefinition-C4BB-ExplanationOfBenefit-*.json")) {
      for (Path file : dir) {
        profiles.add(JSON.readTree(file.toFile()).get("url").asText());
      }
    }
    String eob =
        "{\"resourceType\":\"ExplanationOfBenefit\",\"status\":\"active\",\"use\":\"claim\"}";
    List<Runnable> work = new ArrayList<>();
    for (String profile : profiles) {
      work.add(
          () -> {
            ValidationOptions options = new ValidationOptions();
            options.addProfile(profile);
            validator.validateWithResult(ctx.newJsonParser().parseResource(eob), options);
          });
    }
    for (String text :
        List.of(
            "{\"resourceType\":\"Claim\",\"status\":\"active\",\"use\":\"claim\"}",
            "{\"resourceType\":\"CapabilityStatement\",\"status\":\"active\"}",
            "{\"resourceType\":\"Provenance\",\"recorded\":\"2026-01-01T00:00:00Z\"}")) {
      work.add(() -> validator.validateWithResult(ctx.newJsonParser().parseResource(text)));
    }
    ExecutorService pool =
        Executors.newFixedThreadPool(Math.max(1, Runtime.getRuntime().availableProcessors()));
    try {
      for (Future<?> f : work.stream().map(pool::submit).toList()) {
        f.get();
      }
    } catch (Exception e) {
      throw new IOException("the judge's warm-up failed", e);
    } finally {
      pool.shutdown();
    }
  }

  /** One file's verdict. */
  private record Judged(
      String path, String resourceType, double seconds, List<SingleValidationMessage> messages) {}

  private static Judged judge(FhirValidator validator, FhirContext ctx, Path root, JsonNode entry)
      throws IOException {
    String rel = entry.get("path").asText();
    String text = Files.readString(root.resolve(rel), StandardCharsets.UTF_8);
    ValidationOptions options = new ValidationOptions();
    for (JsonNode profile : entry.path("profiles")) {
      options.addProfile(profile.asText());
    }
    IBaseResource resource = ctx.newJsonParser().parseResource(text);
    long start = System.nanoTime();
    ValidationResult result = validator.validateWithResult(resource, options);
    double seconds = (System.nanoTime() - start) / 1e9;
    return new Judged(rel, resource.fhirType(), seconds, result.getMessages());
  }

  private static String severityOf(SingleValidationMessage m) {
    ResultSeverityEnum s = m.getSeverity();
    if (s == ResultSeverityEnum.ERROR || s == ResultSeverityEnum.FATAL) {
      return "error";
    }
    return s == ResultSeverityEnum.WARNING ? "warning" : "information";
  }

  static boolean isUnknownSystem(String message) {
    if (message == null) {
      return false;
    }
    for (Pattern p : UNKNOWN_SYSTEM) {
      if (p.matcher(message).find()) {
        return true;
      }
    }
    return false;
  }

  /**
   * A profile the manifest names must be known, at the version named: otherwise the run
   * would pass without having checked it.
   */
  static void requireProfile(IValidationSupport support, String canonical) {
    String[] parts = canonical.split("\\|", 2);
    IBaseResource sd = support.fetchStructureDefinition(parts[0]);
    if (sd == null) {
      System.err.println("judge: unknown profile " + canonical);
      System.exit(2);
    }
    if (parts.length == 2) {
      String version = ((org.hl7.fhir.r4.model.StructureDefinition) sd).getVersion();
      if (!parts[1].equals(version)) {
        System.err.println("judge: profile " + canonical + " is loaded at version " + version);
        System.exit(2);
      }
    }
  }

  /** The validator on the support chain; profiles that cannot be found are errors. */
  static FhirValidator buildValidator(FhirContext ctx, IValidationSupport chain) {
    FhirInstanceValidator module = new FhirInstanceValidator(chain);
    // Profiles a resource merely claims (Synthea's US Core ones, in searchsets) are not
    // obtainable here; the manifest's own profiles are checked by requireProfile.
    module.setErrorForUnknownProfiles(false);
    // Billable's own extensions (audit hash chain...) have no published definitions.
    module.setAnyExtensionsAllowed(true);
    return ctx.newValidator().registerValidatorModule(module);
  }

  /** Core R4 definitions, the IG folder, in-memory terminology; unknown systems warn. */
  static ValidationSupportChain buildSupport(
      FhirContext ctx, Path ig, PrePopulatedValidationSupport billable) throws IOException {
    PrePopulatedValidationSupport carin = new PrePopulatedValidationSupport(ctx);
    IParser parser = ctx.newJsonParser();
    int loaded = 0;
    try (DirectoryStream<Path> dir = Files.newDirectoryStream(ig, "*.json")) {
      for (Path file : dir) {
        IBaseResource res = parser.parseResource(Files.readString(file, StandardCharsets.UTF_8));
        carin.addResource(res);
        loaded++;
      }
    }
    if (loaded == 0) {
      throw new IOException("no conformance resources in " + ig);
    }
    UnknownCodeSystemWarningValidationSupport unknown =
        new UnknownCodeSystemWarningValidationSupport(ctx);
    unknown.setNonExistentCodeSystemSeverity(IValidationSupport.IssueSeverity.WARNING);
    return new ValidationSupportChain(
            new DefaultProfileValidationSupport(ctx),
            carin,
            billable,
            new CommonCodeSystemsTerminologyService(ctx),
            new InMemoryTerminologyServerValidationSupport(ctx),
            new SnapshotGeneratingValidationSupport(ctx),
            unknown);
  }
}
