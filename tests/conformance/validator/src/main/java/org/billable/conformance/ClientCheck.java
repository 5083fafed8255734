package org.billable.conformance;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.rest.api.MethodOutcome;
import ca.uhn.fhir.rest.client.api.IGenericClient;
import ca.uhn.fhir.rest.client.api.ServerValidationModeEnum;
import ca.uhn.fhir.rest.gclient.DateClientParam;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import org.hl7.fhir.r4.model.Bundle;
import org.hl7.fhir.r4.model.CapabilityStatement;
import org.hl7.fhir.r4.model.Enumerations.AdministrativeGender;
import org.hl7.fhir.r4.model.Patient;

/**
 * HAPI FHIR's generic client, unchanged, against a running Billable: the calls an
 * integration engineer makes first. Usage: {@code ClientCheck <fhir-base-url>}; prints one
 * line per check and "N passed, M failed"; exit status 1 when a check failed.
 */
public final class ClientCheck {
  private static final String MRN = "https://hospital.example/mrn";
  private final List<String> failures = new ArrayList<>();
  private int passed;

  private ClientCheck() {}

  public static void main(String[] args) {
    if (args.length != 1) {
      System.err.println("usage: ClientCheck <fhir-base-url>");
      System.exit(2);
    }
    FhirContext ctx = FhirContext.forR4Cached();
    ctx.getRestfulClientFactory().setServerValidationMode(ServerValidationModeEnum.NEVER);
    IGenericClient client = ctx.newRestfulGenericClient(args[0]);
    ClientCheck check = new ClientCheck();
    check.run(client);
    System.out.printf("hapi-client: %d passed, %d failed%n", check.passed, check.failures.size());
    check.failures.forEach(f -> System.out.println("FAILED " + f));
    System.exit(check.failures.isEmpty() ? 0 : 1);
  }

  private void run(IGenericClient client) {
    CapabilityStatement cs = client.capabilities().ofType(CapabilityStatement.class).execute();
    expect("metadata is an R4 CapabilityStatement", "4.0.1".equals(cs.getFhirVersion().toCode()));

    // Conditional create: HAPI sends If-None-Exist as an absolute [base]/Patient?identifier=...
    Patient ada = new Patient();
    ada.addIdentifier().setSystem(MRN).setValue("hapi-1");
    ada.addName().setFamily("Lovelace").addGiven("Ada");
    ada.setGender(AdministrativeGender.FEMALE);
    MethodOutcome first = conditionalCreate(client, ada);
    MethodOutcome again = conditionalCreate(client, ada);
    expect("conditional create creates once", Boolean.TRUE.equals(first.getCreated()));
    expect(
        "conditional create finds the match the second time",
        !Boolean.TRUE.equals(again.getCreated())
            && first.getId().getIdPart().equals(again.getId().getIdPart()));

    // _since and a date search with a Date: HAPI writes the offset's "+" unescaped.
    Bundle history =
        client
            .history()
            .onType(Patient.class)
            .returnBundle(Bundle.class)
            .since(new Date(0))
            .execute();
    expect("history _since with an offset finds the patient", history.getEntry().size() == 1);
    Bundle updated =
        client
            .search()
            .forResource(Patient.class)
            .where(new DateClientParam("_lastUpdated").afterOrEquals().millis(new Date(0)))
            .returnBundle(Bundle.class)
            .execute();
    expect("_lastUpdated with an offset finds the patient", updated.getEntry().size() == 1);

    Bundle counted =
        client.search().forResource(Patient.class).count(0).returnBundle(Bundle.class).execute();
    expect("_count=0 gives the total", counted.hasTotal() && counted.getTotal() == 1);

    Patient trimmed =
        client
            .read()
            .resource(Patient.class)
            .withId(first.getId().getIdPart())
            .elementsSubset("gender")
            .execute();
    expect(
        "_elements on a read trims the resource",
        trimmed.hasGender() && !trimmed.hasName() && trimmed.getMeta().hasTag());

    String patch = "[{\"op\":\"replace\",\"path\":\"/gender\",\"value\":\"other\"}]";
    client.patch().withBody(patch).withId("Patient/" + first.getId().getIdPart()).execute();
    Patient patched =
        client.read().resource(Patient.class).withId(first.getId().getIdPart()).execute();
    expect("JSON Patch applies", patched.getGender() == AdministrativeGender.OTHER);
  }

  private static MethodOutcome conditionalCreate(IGenericClient client, Patient patient) {
    return client
        .create()
        .resource(patient)
        .conditional()
        .where(Patient.IDENTIFIER.exactly().systemAndIdentifier(MRN, "hapi-1"))
        .execute();
  }

  private void expect(String what, boolean ok) {
    System.out.println((ok ? "ok     " : "NOT OK ") + what);
    if (ok) {
      passed++;
    } else {
      failures.add(what);
    }
  }
}
