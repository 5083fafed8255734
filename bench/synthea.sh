#!/usr/bin/env bash
# Generate N synthetic patients with Synthea as FHIR R4 transaction Bundles.
#
#   bench/synthea.sh N SEED [OUTDIR]
#
# Synthea is on Maven Central as org.mitre.synthea:synthea; the published jar has no
# bundled dependencies (there is no with-dependencies classifier), so Maven resolves the
# jar and its dependencies into a cache dir (SYNTHEA_CACHE, default
# ~/.cache/billable/synthea/VERSION) once. Needs Java 17+ and Maven. The output (Synthea
# data is synthetic) lands in OUTDIR/fhir/: one patient bundle per file plus
# hospitalInformation*.json and practitionerInformation*.json, which must be loaded first
# (the patient bundles refer to them by conditional references).
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 N SEED [OUTDIR]" >&2
    exit 2
fi
N=$1
SEED=$2
OUTDIR=${3:-./data/synthea}
VERSION=${SYNTHEA_VERSION:-3.3.0}
CACHE=${SYNTHEA_CACHE:-$HOME/.cache/billable/synthea/$VERSION}
STATE=${SYNTHEA_STATE:-Massachusetts}

mkdir -p "$CACHE/lib"
if [[ ! -f "$CACHE/.complete" ]]; then
    echo "fetching Synthea $VERSION and its dependencies into $CACHE" >&2
    cat >"$CACHE/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>billable.bench</groupId>
  <artifactId>synthea-runner</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>org.mitre.synthea</groupId>
      <artifactId>synthea</artifactId>
      <version>$VERSION</version>
    </dependency>
  </dependencies>
</project>
POM
    mvn -q -f "$CACHE/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$CACHE/lib" -DincludeScope=runtime
    touch "$CACHE/.complete"
fi

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
echo "generating $N patients (seed $SEED) into $OUTDIR/fhir" >&2
# Run from the output dir: Synthea writes ./output unless told otherwise.
cd "$OUTDIR"
java ${SYNTHEA_JAVA_OPTS:--Xmx2g} -cp "$CACHE/lib/*" App \
    -p "$N" -s "$SEED" -cs "$SEED" -r 20250101 \
    --exporter.baseDirectory="$OUTDIR" \
    --exporter.fhir.export=true \
    --exporter.fhir.transaction_bundle=true \
    --exporter.hospital.fhir.export=true \
    --exporter.practitioner.fhir.export=true \
    --exporter.csv.export=false \
    --exporter.ccda.export=false \
    --exporter.text.export=false \
    --generate.only_alive_patients=true \
    "$STATE" >"$OUTDIR/synthea.log" 2>&1 || {
    tail -30 "$OUTDIR/synthea.log" >&2
    exit 1
}
ls -1 "$OUTDIR/fhir" >&2
