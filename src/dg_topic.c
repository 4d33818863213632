/*
 * distill-guard engine: the topic lexicon and its lookup.
 *
 * Each domain lists its words; a trailing '*' makes the word a stem that
 * also matches longer words ("recipe*": recipes), otherwise the whole
 * word must match.  Stems are at least DG_TOPIC_STEM_MIN bytes.  A domain
 * may name a parent: a specific domain (python) inherits the hits of its
 * generic parent (programming) once it has a hit of its own, so a python
 * question full of generic programming words still lands on python.
 * Words are chosen for prompts: ambiguous ones ("react", "apple",
 * "design", "bear") are left out rather than guessed.
 */

#include <pthread.h>
#include <string.h>

#include "dg_topic.h"


#define DG_TOPIC_SLOTS      4096        /* about twice the words */

#define DG_SLOT_EMPTY       0
#define DG_SLOT_WORD        1
#define DG_SLOT_STEM        2


enum {
    DG_T_NONE = 0,
    DG_T_PROG, DG_T_PYTHON, DG_T_JS, DG_T_WEB, DG_T_SQL, DG_T_SYSLANG,
    DG_T_JVM, DG_T_MOBILE, DG_T_OPS, DG_T_DATA, DG_T_ML, DG_T_AI, DG_T_SEC,
    DG_T_NET, DG_T_TECH, DG_T_ENG, DG_T_MATH, DG_T_GEOM, DG_T_STAT,
    DG_T_PHYS, DG_T_CHEM, DG_T_BIO, DG_T_ANIMAL, DG_T_PLANT, DG_T_AGRI,
    DG_T_MED, DG_T_FIT, DG_T_PSY, DG_T_LAW, DG_T_CRIME, DG_T_POL, DG_T_FIN,
    DG_T_CRYPTO, DG_T_ECON, DG_T_BIZ, DG_T_MKT, DG_T_SOCIAL, DG_T_CAREER,
    DG_T_EDU, DG_T_GRAM, DG_T_LANG, DG_T_WRITE, DG_T_FICTION, DG_T_POETRY,
    DG_T_LIT, DG_T_MUSIC, DG_T_FILM, DG_T_ART, DG_T_ARCH, DG_T_GAME,
    DG_T_LOGIC, DG_T_SPORT, DG_T_FOOD, DG_T_TRAVEL, DG_T_GEO, DG_T_HIST,
    DG_T_REL, DG_T_PHIL, DG_T_ENV, DG_T_ENERGY, DG_T_ASTRO, DG_T_EARTH,
    DG_T_TRANSPORT, DG_T_FAMILY, DG_T_HOME, DG_T_FASHION, DG_T_PROD,
    DG_T_EVENT, DG_T_COMM, DG_T_SHOP, DG_T_HUMOR, DG_T_NEWS, DG_T_SCI,
    DG_T_MIL, DG_T_SOCIETY,
    DG_T_N
};


_Static_assert(DG_T_N <= DG_TOPIC_DOMAINS && DG_TOPIC_DOMAINS <= DG_TOPIC_STOP,
               "domain ids must fit the hit counters and a byte");


typedef struct {
    const char         *name;
    uint8_t             parent;
    const char         *words;
} dg_topic_domain_t;


/*
 * 8 bytes a slot so that the table fits the L1 cache: the slot index
 * holds 12 bits of the hash, the tag 32 more.
 */
typedef struct {
    uint32_t            tag;
    uint8_t             domain;
    uint8_t             kind;
} dg_topic_slot_t;


static const dg_topic_domain_t  dg_topic_domains[DG_T_N] = {

    [DG_T_NONE] = { "none", DG_T_NONE, "" },

    [DG_T_PROG] = { "programming", DG_T_NONE,
        "code codes coded coding coder* program* software debug* compil* "
        "syntax function* variable* algorithm* recursi* loop loops array* "
        "string strings integer* boolean* bug bugs api apis sdk framework* "
        "github git repo repositor* refactor* regex regexp json yaml xml "
        "parse parser parsers parsing runtime exception* queue* iterat* "
        "lambda async* concurren* pseudocode snippet* developer* unittest "
        "debugger ide vscode leetcode oop linked hashmap* subroutine* "
        "boilerplate stacktrace endpoint* callback* ruby perl haskell lua "
        "matlab fortran cobol scratch error errors" },

    [DG_T_PYTHON] = { "python", DG_T_PROG,
        "python python3 pythonic pandas numpy scipy django flask pip pytest "
        "matplotlib seaborn jupyter dataframe* pydantic fastapi asyncio "
        "pyspark tkinter pygame conda virtualenv" },

    [DG_T_JS] = { "javascript", DG_T_PROG,
        "javascript typescript js nodejs reactjs jsx tsx vue vuejs angular "
        "npm jquery webpack nextjs svelte deno ecmascript dom es6" },

    [DG_T_WEB] = { "web", DG_T_PROG,
        "html css website* webpage* browser* frontend backend web webapp* "
        "php laravel wordpress sass tailwind bootstrap url urls domain* "
        "hosting" },

    [DG_T_SQL] = { "databases", DG_T_PROG,
        "sql mysql postgres* sqlite database* mongodb nosql redis query "
        "queries schema* oracle dbms" },

    [DG_T_SYSLANG] = { "systems programming", DG_T_PROG,
        "cpp rust rustc golang goroutine* pointer* malloc struct structs "
        "kernel* verilog vhdl segfault assembler compiler* fpga mutex* "
        "multithread*" },

    [DG_T_JVM] = { "java and dotnet", DG_T_PROG,
        "java kotlin scala jvm maven gradle csharp dotnet springboot" },

    [DG_T_MOBILE] = { "mobile apps", DG_T_PROG,
        "android ios iphone* ipad* app apps flutter swiftui xcode "
        "smartwatch* mobile" },

    [DG_T_OPS] = { "devops and systems", DG_T_PROG,
        "linux unix ubuntu debian bash docker* kubernetes k8s nginx deploy* "
        "devops aws azure gcp cloud server servers terraform ansible cron "
        "systemd ssh powershell sudo virtualiz* microservice* jenkins "
        "container* filesystem*" },

    [DG_T_DATA] = { "data", DG_T_NONE,
        "data analytics visualiz* dashboard* csv tableau bigquery etl "
        "spreadsheet* excel dataset* datasets chart charts" },

    [DG_T_ML] = { "machine learning", DG_T_AI,
        "neural regression classifier* tensorflow pytorch keras sklearn "
        "scikit embedding* transformer* gradient* overfit* backpropagat* "
        "convolution* lstm cnn rnn gpu gpus cuda clustering kmeans "
        "supervised unsupervised hyperparameter* predictive reinforcement "
        "machine machines" },

    [DG_T_AI] = { "artificial intelligence", DG_T_NONE,
        "ai artificial intelligence chatgpt gpt llm llms openai chatbot* "
        "prompt prompts agi nlp generative copilot langchain robot* "
        "robotic* automation automat*" },

    [DG_T_SEC] = { "security", DG_T_NONE,
        "security encrypt* decrypt* cryptograph* password* hack hacks "
        "hacked hacker* hacking vulnerab* malware phishing firewall* cyber* "
        "exploit* authenticat* ransomware antivirus privacy breach* spyware" },

    [DG_T_NET] = { "networking", DG_T_NONE,
        "network* internet wifi router* tcp udp dns protocol* packet* "
        "bandwidth ethernet ipv4 socket* latency vpn online" },

    [DG_T_TECH] = { "computers and devices", DG_T_NONE,
        "computer* laptop* smartphone* phone phones device* gadget* "
        "technolog* tech keyboard* printer* camera* headphone* macbook "
        "google microsoft samsung hardware cpu processor* usb bluetooth "
        "virtual digital" },

    [DG_T_ENG] = { "engineering", DG_T_NONE,
        "engineer* circuit* voltage resistor* capacitor* transistor* "
        "arduino sensor* mechanical electrical electronic* microcontroller* "
        "pcb drone* welding hydraulic* turbine* aerospace" },

    [DG_T_MATH] = { "mathematics", DG_T_NONE,
        "math maths mathemat* equation* algebra* calculus integral* "
        "derivative* polynomial* theorem* proof proofs primes fraction* "
        "arithmetic* multiply multiplication divisible divisor* factorial* "
        "fibonacci matrix matrices vector* logarithm* exponent* quadratic "
        "percent* decimal* calculat* trigonometr* sine cosine tangent ratio "
        "ratios prime frac" },

    [DG_T_GEOM] = { "geometry", DG_T_MATH,
        "geometr* triangle* circle circles radius diameter circumference "
        "perimeter* polygon* rectangle* hypotenuse pythagor* angle angles "
        "sphere* cylinder* parallelogram* trapezoid* hexagon* pentagon* "
        "cube cubes square squares shape shapes prism*" },

    [DG_T_STAT] = { "statistics", DG_T_MATH,
        "statistic* probabilit* median variance deviation average averages "
        "distribution* correlat* sampling bayes* dice percentile* outlier* "
        "histogram* anova" },

    [DG_T_PHYS] = { "physics", DG_T_NONE,
        "physics physicist* gravit* velocity acceleration momentum quantum "
        "relativity newton* friction force forces particle* electron* "
        "photon* magnet* thermodynamic* entropy kinetic optic* wavelength* "
        "laser* pendulum projectile* torque joule* einstein" },

    [DG_T_CHEM] = { "chemistry", DG_T_NONE,
        "chemi* molecul* atom atoms atomic acid* alkal* periodic oxygen "
        "hydrogen nitrogen sodium ions ionic covalent catalyst* isotope* "
        "polymer* solvent* oxid* electrolys* titration" },

    [DG_T_BIO] = { "biology", DG_T_NONE,
        "biolog* cell cells dna rna genetic* gene genes genom* protein* "
        "evolution* species organism* photosynthe* bacteri* virus* enzyme* "
        "mitochondri* chromosom* mutation* microb* anatomy neuron* darwin* "
        "crispr taxonom*" },

    [DG_T_ANIMAL] = { "animals", DG_T_NONE,
        "animal* mammal* reptile* amphibian* insect* bird birds dog dogs "
        "puppy puppies cat cats kitten* horse* tiger* lion lions elephant* "
        "whale* shark* dolphin* penguin* monkey* wolf wolves bears fish "
        "fishes snake* frog* rabbit* zoo wildlife pet pets giraffe* zebra* "
        "owl owls eagle* butterfl* bee bees spider* cow cows pig pigs sheep "
        "veterinar* predator* habitat* dinosaur*" },

    [DG_T_PLANT] = { "plants and gardening", DG_T_NONE,
        "plant plants garden* flower* tree trees seeds soil botan* leaf "
        "leaves cactus roses tulip* compost* fertiliz*" },

    [DG_T_AGRI] = { "agriculture", DG_T_NONE,
        "farm* crop crops agricultur* livestock harvest* irrigat* tractor* "
        "cattle" },

    [DG_T_MED] = { "medicine", DG_T_NONE,
        "medic* disease* symptom* doctor* patients treatment* diagnos* "
        "vaccin* cancer* diabet* tumor* blood hospital* clinic* surgery "
        "surgeon* surgical nurse* nursing pharma* drug drugs infection* "
        "pandemic* covid* illness* chronic health healthcare pain dental "
        "dentist* teeth tooth cardiac cardiolog* cardiovascular allerg* "
        "asthma alzheimer* dementia antibiotic* prescri* injur* fever "
        "headache* migraine* insulin physician* epidemi* echocardiogra*" },

    [DG_T_FIT] = { "fitness and nutrition", DG_T_NONE,
        "exercis* workout* fitness diet diets dietary nutrition* nutrient* "
        "calorie* vitamin* muscle* yoga gym gyms jogging weightlifting "
        "cardio stretching healthy obesity wellness meditat* sleep sleeping" },

    [DG_T_PSY] = { "psychology", DG_T_NONE,
        "psycholog* emotion* anxiety anxious depress* stress* mental* "
        "therap* behavio* motivat* cognitive cognition personality esteem "
        "trauma* mindful* happiness feelings lonel* introvert* extrovert* "
        "empath* psychiatr* adhd autism autistic feeling* mood moods" },

    [DG_T_LAW] = { "law", DG_T_NONE,
        "law laws legal* lawyer* court courts attorney* lawsuit* judge* "
        "statute* regulat* liabil* copyright* patent* contract contracts "
        "constitution* amendment* plaintiff* defendant* verdict* jury "
        "litigat* tort gdpr compliance trademark*" },

    [DG_T_CRIME] = { "crime", DG_T_LAW,
        "crime* criminal* police prison* murder* theft robbery jail "
        "detective* fraud* arrest*" },

    [DG_T_POL] = { "politics", DG_T_NONE,
        "politic* govern* election* president* democra* vote votes voting "
        "voter* congress* parliament* senat* republican* policy policies "
        "legislat* immigra* diplomac* diplomat* geopolit* sanction* "
        "citizen* minister* mayor* referend* liberal* conservativ* "
        "socialis* communis* ideolog* activis* protest*" },

    [DG_T_FIN] = { "finance", DG_T_NONE,
        "financ* invest* stock stocks portfolio* dividend* loan* mortgage* "
        "bank banks banking tax taxes taxation budget* saving savings "
        "retirement insurance credit* debt* money income* expense* "
        "accounting accountant* asset* trading trader* fund funds funding "
        "payment* pension* invoice* cash currenc* dollar* euro euros forex "
        "interest" },

    [DG_T_CRYPTO] = { "crypto", DG_T_FIN,
        "blockchain* bitcoin* ethereum crypto cryptocurrenc* nft nfts "
        "solidity defi wallet*" },

    [DG_T_ECON] = { "economics", DG_T_NONE,
        "econom* inflation gdp recession* unemploy* tariff* monetary fiscal "
        "macroeconom* microeconom* poverty wage wages globaliz* capitalis* "
        "market markets" },

    [DG_T_BIZ] = { "business", DG_T_NONE,
        "business* company companies startup* entrepreneur* management "
        "manager* employee* employer* revenue* profit* ceo ceos "
        "stakeholder* leadership organizational corporat* enterprise* b2b "
        "saas logistic* inventory procurement meetings kpi kpis okr swot "
        "consulting consultant* negotiat* workplace project projects "
        "meeting leader leaders" },

    [DG_T_MKT] = { "marketing", DG_T_NONE,
        "marketing advertis* advert* brand* seo slogan* campaign* promot* "
        "customer* sales salesperson audience* copywrit* tagline* "
        "influencer* ecommerce newsletter* commercial* jingle* product "
        "products" },

    [DG_T_SOCIAL] = { "social media", DG_T_NONE,
        "twitter tweet* instagram facebook tiktok youtube* hashtag* "
        "linkedin reddit followers viral media" },

    [DG_T_CAREER] = { "careers", DG_T_NONE,
        "resume resumes job jobs interview* career* hiring recruit* salary "
        "salaries internship* applicant* occupation* coworker* colleague* "
        "boss resignation" },

    [DG_T_EDU] = { "education", DG_T_NONE,
        "educat* student* teacher* teach teaches teaching school* "
        "classroom* lesson* curriculum* universit* college* exam exams "
        "homework course courses tutor* syllabus pedagog* kindergarten "
        "quiz* lecture* professor* scholarship* academ* graduation" },

    [DG_T_GRAM] = { "grammar and wording", DG_T_NONE,
        "grammar* grammatical* verb verbs noun nouns adjective* adverb* "
        "pronoun* synonym* antonym* vocabular* spelling punctuation tense "
        "tenses plural* preposition* conjunction* idiom* simile* "
        "alliteration onomatopoeia homophone* syllable* acronym* abbreviat* "
        "paraphras* proofread* typo typos linguist* semantic* palindrome* "
        "anagram* sentiment* passive sentence sentences phrase phrases "
        "imperative interrogative exclamat* declarative analogy analogies "
        "formal informal" },

    [DG_T_LANG] = { "languages", DG_T_NONE,
        "translat* french spanish german chinese japanese korean italian "
        "portuguese russian arabic hindi latin mandarin english bilingual "
        "dialect* fluent* pronunciat* language languages" },

    [DG_T_WRITE] = { "writing", DG_T_NONE,
        "essay* article* blog blogs blogpost* thesis persuasive "
        "argumentative writer* writing citation* bibliograph* outline "
        "summary paragraph paragraphs dialogue* journal journaling" },

    [DG_T_FICTION] = { "fiction", DG_T_LIT,
        "story stories storytell* fiction* character* villain* hero heroes "
        "heroine* protagonist* fairy fairytale* dragon* fantasy wizard* "
        "magic* princess* dystopi* utopi* roleplay* adventure* mystery "
        "ghost* haunted spaceship* zombie* superhero* monster* knight* tale "
        "tales fable* creature* romance narrative* plot" },

    [DG_T_POETRY] = { "poetry", DG_T_LIT,
        "poem* poet* haiku* sonnet* limerick* verse verses stanza* rhym* "
        "ballad* acrostic iambic" },

    [DG_T_LIT] = { "literature", DG_T_NONE,
        "literat* book books novel novels novelist* author* shakespeare* "
        "hamlet tolkien orwell* dickens austen chapter* publish* "
        "bestseller* metaphor* allegor* symbolism prose literary biograph* "
        "memoir* ebook* kindle paperback quote quotes proverb*" },

    [DG_T_MUSIC] = { "music", DG_T_NONE,
        "music* song songs songwriter* melod* guitar* piano* chord* album* "
        "band bands singer* sing singing lyric* rhythm* jazz* hiphop "
        "rapper* rap concert* orchestra* symphon* beethoven mozart violin* "
        "drum drums drummer tempo spotify playlist* opera operas harmon* "
        "composer* vocal* tune tunes dj" },

    [DG_T_FILM] = { "film and tv", DG_T_NONE,
        "film* movie* cinema* actor* actress* tv television* episode* "
        "netflix screenplay* hollywood oscar* sitcom* documentar* trailer* "
        "anime cartoon* disney pixar starring imdb screenwrit* scene scenes "
        "theater theatre broadway" },

    [DG_T_ART] = { "art and design", DG_T_NONE,
        "painting* paint paints painter* artist* art arts artwork* draw "
        "drawing* sketch* sculpt* museum* galler* canvas photograph* photo "
        "photos portrait* watercolor* logo logos designer* colour* color "
        "colors palette* font fonts typograph* illustration illustrations "
        "ceramic* pottery origami crafts craft knit* crochet* mural* "
        "aesthetic* picasso monet gogh" },

    [DG_T_ARCH] = { "architecture", DG_T_NONE,
        "architect* construction skyscraper* cement brick* carpent* "
        "blueprint* bridges" },

    [DG_T_GAME] = { "games", DG_T_NONE,
        "game games gaming gamer* videogame* chess minecraft fortnite "
        "pokemon* nintendo playstation xbox dungeon* rpg boardgame* trivia "
        "poker esport* crossword*" },

    [DG_T_LOGIC] = { "logic and puzzles", DG_T_NONE,
        "logic* riddle* puzzle* sudoku syllogism* brainteaser* paradox*" },

    [DG_T_SPORT] = { "sports", DG_T_NONE,
        "sport* football* soccer basketball* baseball* tennis golf* olymp* "
        "athlete* athletic* nba nfl fifa cricket* hockey rugby swimming "
        "marathon* cycling boxing tournament* league* championship* "
        "stadium* referee* goalkeeper* quarterback* ski skiing volleyball "
        "wrestling messi ronaldo lebron" },

    [DG_T_FOOD] = { "food and cooking", DG_T_NONE,
        "recipe* cook cooks cooking cooked cookie* cookbook* chef* bake "
        "baked baking baker* ingredient* dish dishes meal meals food* "
        "kitchen* cake* cupcake* bread* pasta* sauce* chicken* soup* "
        "vegetable* vegetarian* vegan* fruit* flavor* flavour* dessert* "
        "breakfast* dinner* lunch* restaurant* cuisine* pizza* chocolate* "
        "cheese* egg eggs rice oven fry fried frying grill* salad* spice "
        "spices spicy sugar butter flour cream beef pork steak* salmon "
        "shrimp sushi taco* burger* sandwich* noodle* curry cocktail* wine* "
        "beer* coffee* tea teas juice* smoothie* milk apples banana* "
        "oranges strawberr* tomato* potato* carrot* onion* garlic lemon* "
        "mango* avocado* snack* vinegar yogurt chili herb herbs tablespoon* "
        "teaspoon* roast* boil* simmer* marinat* bbq barbecue* menu menus "
        "dining brunch appetizer* omelet* pancake* meat* seafood" },

    [DG_T_TRAVEL] = { "travel", DG_T_NONE,
        "travel* trip trips vacation* tourist* tourism hotel* flight* "
        "itinerar* destination* passport* visa airport* beach* resort* "
        "sightseeing backpack* cruise* airline* luggage hostel* holiday* "
        "abroad airbnb camping hiking hike hikes trail trails park parks "
        "outdoor*" },

    [DG_T_GEO] = { "geography", DG_T_NONE,
        "geograph* country countries continent* capital capitals city "
        "cities river* mountain* ocean* population* desert* island* europe* "
        "asia* africa* america* australia* canada* mexic* brazil* india "
        "china japan germany france italy spain russia egypt* london paris "
        "tokyo latitude* longitude* equator lake lakes landmark* canyon* "
        "himalaya* everest sahara nile mississippi pacific atlantic "
        "antarctic* arctic peninsula* territor* province* landscape*" },

    [DG_T_HIST] = { "history", DG_T_NONE,
        "histor* war wars warfare ancient century centuries empire* "
        "revolution* medieval civiliz* dynast* king kings queen queens "
        "battle* roman romans rome greek greece pharaoh* coloni* slavery "
        "abolition* renaissance victorian nazi* hitler napoleon* lincoln "
        "independence treaty treaties monarch* feudal* viking* samurai "
        "ottoman byzantin* aztec* mayan inca incas holocaust archaeolog* "
        "prehistor* pyramid*" },

    [DG_T_REL] = { "religion and myth", DG_T_NONE,
        "religio* god gods goddess* bible* church* christian* islam* "
        "muslim* buddh* hindu* jewish judaism spiritual* myth myths "
        "mytholog* prayer* pray jesus christ allah quran torah sacred "
        "heaven angel angels zeus theolog* atheis* astrolog* zodiac* "
        "horoscope* tarot faith" },

    [DG_T_PHIL] = { "philosophy", DG_T_NONE,
        "philosoph* ethic* moral* existential* kant* plato* socrat* "
        "aristotle* nietzsche descartes conscious* metaphysic* epistemolog* "
        "utilitarian* stoic* virtue* dilemma* nihilis* determinism ontolog* "
        "wisdom" },

    [DG_T_ENV] = { "environment", DG_T_NONE,
        "climate environment* pollut* recycl* sustainab* renewable* carbon "
        "emission* warming deforest* ecosystem* conservation* biodivers* "
        "greenhouse plastic* waste wildfire* drought* glacier* ozone "
        "ecolog* eco endangered extinct* nature water forest* rainforest*" },

    [DG_T_ENERGY] = { "energy", DG_T_NONE,
        "energy solar electricity fossil* nuclear battery batteries "
        "hydroelectric* geotherm* petroleum gasoline coal" },

    [DG_T_ASTRO] = { "astronomy and space", DG_T_NONE,
        "astronom* planet* galax* universe* nasa moon moons mars jupiter "
        "saturn venus orbit* telescope* cosmic cosmos cosmolog* asteroid* "
        "comet* star stars astronaut* spacecraft* rocket* spacex satellite* "
        "eclipse* nebula* supernova* blackhole exoplanet* lunar sun alien "
        "aliens extraterrestrial*" },

    [DG_T_EARTH] = { "earth science and weather", DG_T_NONE,
        "earthquake* volcan* weather* geolog* tornado* hurricane* rain "
        "rainfall storm* tsunami* erosion tectonic* sediment* meteorolog* "
        "forecast* temperature* snow* thunder* lightning humidity minerals "
        "winter summer season seasons" },

    [DG_T_TRANSPORT] = { "transport", DG_T_NONE,
        "car cars vehicle* driving tesla automo* traffic* bicycle* bike "
        "bikes motorcycle* truck* bus buses trains railway* subway "
        "transport* airplane* aircraft* aviation pilot* highway* parking "
        "tire tires fuel* commut*" },

    [DG_T_FAMILY] = { "family and relationships", DG_T_NONE,
        "relationship* friend friends friendship* dating marriage married "
        "wedding* boyfriend* girlfriend* husband* wife wives spouse* "
        "divorce* family families parent parents parenting child children "
        "kid kids baby babies toddler* mother* father* mom dad sibling* "
        "brother* sister* grandm* grandp* romantic love" },

    [DG_T_HOME] = { "home", DG_T_NONE,
        "house houses home homes apartment* rent renting rental* landlord* "
        "tenant* furniture cleaning diy repair* plumbing plumber* bedroom* "
        "bathroom* decor* interior* garage* roof* renovat* mattress* "
        "household* chores laundry" },

    [DG_T_FASHION] = { "fashion and beauty", DG_T_NONE,
        "fashion* clothing clothes dress dresses shoe shoes sneaker* "
        "outfit* makeup skincare cosmetic* hairstyle* haircut* jewelry "
        "jewellery shirt* jacket* wardrobe* apparel perfume* fabric* sewing "
        "tailor* jeans handbag*" },

    [DG_T_PROD] = { "productivity", DG_T_NONE,
        "productiv* habit* goal goals procrastinat* routine* schedul* "
        "planner* todo calendar* deadline*" },

    [DG_T_EVENT] = { "events and holidays", DG_T_NONE,
        "birthday* party parties celebrat* christmas halloween thanksgiving "
        "easter gift gifts anniversar* festival* invitation* valentine* "
        "ramadan diwali hanukkah" },

    [DG_T_COMM] = { "correspondence", DG_T_NONE,
        "email* letter memo memos greeting* apolog* condolence* "
        "congratulat* farewell communicat* presentation* speech speeches "
        "announcement*" },

    [DG_T_SHOP] = { "shopping", DG_T_NONE,
        "shopping shop shops purchas* retail* discount* coupon* refund* "
        "complaint* warranty price prices pricing cart" },

    [DG_T_HUMOR] = { "humor", DG_T_NONE,
        "joke* funny humor* humour* pun puns comedy comedian* hilarious "
        "meme* sarcas* satir* prank*" },

    [DG_T_NEWS] = { "news and media", DG_T_NONE,
        "news* journalis* headline* newspaper* press reporter* editorial* "
        "tabloid* podcast* magazine*" },

    [DG_T_SCI] = { "science", DG_T_NONE,
        "scien* experiment* hypothes* research* laboratory lab labs" },

    [DG_T_MIL] = { "military", DG_T_NONE,
        "military army* armies weapon* soldier* navy naval missile* troop* "
        "warship* marines veteran* combat*" },

    [DG_T_SOCIETY] = { "society", DG_T_NONE,
        "society societal inequality racism discrimination gender* feminis* "
        "diversity equality lgbt* homeless* culture cultures cultural "
        "tradition* community communities" },
};


/*
 * Frequent words that say nothing of the topic: the instruction verbs
 * and generic nouns of prompts.  They are kept out of the min-hash.
 */
static const char  dg_topic_stop[] =
    "that this with from what have will your about which there their "
    "would should could write following given generate create describe "
    "explain provide make list name find give using based example "
    "examples words word text input output "
    "question questions answer answers identify suggest compare "
    "summarize classify rewrite edit convert analyze analyse construct "
    "compose design develop tell know want need help like also into than "
    "then these those them they when where while been were being some "
    "such only other more most each every many much very just over under "
    "after before between because through same different first second "
    "third last next three four five seven eight nine type types kind "
    "kinds ways thing things something someone people person please does "
    "doing done made makes take takes come comes good best better great "
    "important possible below above here still even well without within "
    "shall must might upon including include includes contain contains "
    "information description detailed details short long simple "
    "specific correct appropriate provided used uses creating title "
    "topic main point points idea ideas lists number numbers time times "
    "year years today world life work working works tips steps step "
    "benefits advantages disadvantages impact effects effect role "
    "importance concept reason reasons result results case cases form "
    "change changes value values order part parts level group system "
    "process method approach problem problems solution solutions issue "
    "issues situation context content format style tone version response "
    "request task tasks user users assistant reply instruction "
    "instructions imagine pretend explanation explanations determine "
    "least small large high right left true false whether "
    "hello thanks thank think line lines item items";


uint64_t  dg_topic_filter[(1 << DG_TOPIC_FILTER_BITS) / 64];
uint16_t  dg_topic_lens[1 << DG_TOPIC_LENS_BITS];

static dg_topic_slot_t   dg_topic_slots[DG_TOPIC_SLOTS];
static unsigned          dg_topic_dups;
static unsigned          dg_topic_bad;
static pthread_once_t    dg_topic_once = PTHREAD_ONCE_INIT;


static const dg_topic_slot_t *
dg_topic_find(uint64_t h)
{
    size_t  i;

    i = (size_t) (h >> 20) & (DG_TOPIC_SLOTS - 1);

    while (dg_topic_slots[i].kind != DG_SLOT_EMPTY) {
        if (dg_topic_slots[i].tag == (uint32_t) (h >> 32)) {
            return &dg_topic_slots[i];
        }

        i = (i + 1) & (DG_TOPIC_SLOTS - 1);
    }

    return NULL;
}


static void
dg_topic_insert(const char *w, size_t len, uint8_t domain)
{
    size_t     i;
    uint8_t    kind;
    uint64_t   first4;
    unsigned   key;
    dg_word_t  word;

    kind = DG_SLOT_WORD;

    if (len > 1 && w[len - 1] == '*') {
        kind = DG_SLOT_STEM;
        len--;

        /* the length mask is by the first 4 bytes, as they are in text */
        if (len < DG_TOPIC_STEM_MIN || len > DG_TOPIC_STEM_MAX) {
            dg_topic_bad++;
            return;
        }

        for (i = 0; i < 4; i++) {
            if (w[i] < 'a' || w[i] > 'z') {
                dg_topic_bad++;
                return;
            }
        }
    }

    /* hashed as the features pass hashes words */
    if (dg_word_hash((const unsigned char *) w,
                     (const unsigned char *) w + len, &word)
        != len)
    {
        dg_topic_bad++;
        return;
    }

    if (dg_topic_find(word.hash) != NULL) {
        dg_topic_dups++;
        return;
    }

    i = (size_t) (word.hash >> 20) & (DG_TOPIC_SLOTS - 1);

    while (dg_topic_slots[i].kind != DG_SLOT_EMPTY) {
        i = (i + 1) & (DG_TOPIC_SLOTS - 1);
    }

    dg_topic_slots[i].tag = (uint32_t) (word.hash >> 32);
    dg_topic_slots[i].domain = domain;
    dg_topic_slots[i].kind = kind;

    key = dg_word_key(word.v);
    dg_topic_filter[key >> 6] |= (uint64_t) 1 << (key & 63);

    if (kind == DG_SLOT_STEM) {
        first4 = 0;

        for (i = 0; i < 4; i++) {
            first4 |= (uint64_t) (unsigned char) w[i] << (8 * i);
        }

        key = (unsigned) ((first4 * DG_WORD_KEY_MUL)
                          >> (64 - DG_TOPIC_LENS_BITS));
        dg_topic_lens[key] |= (uint16_t) (1 << (len - DG_TOPIC_STEM_MIN));
    }
}


static void
dg_topic_insert_list(const char *s, uint8_t domain)
{
    const char  *end;

    for ( ;; ) {
        while (*s == ' ') {
            s++;
        }

        if (*s == '\0') {
            return;
        }

        end = strchr(s, ' ');

        if (end == NULL) {
            end = s + strlen(s);
        }

        dg_topic_insert(s, end - s, domain);
        s = end;
    }
}


static void
dg_topic_init(void)
{
    unsigned  d;

    /* stop words first: a stop word is never also a topical word */
    dg_topic_insert_list(dg_topic_stop, DG_TOPIC_STOP);

    for (d = 1; d < DG_T_N; d++) {
        dg_topic_insert_list(dg_topic_domains[d].words, (uint8_t) d);
    }
}


void
dg_topic_begin(dg_topic_acc_t *acc)
{
    pthread_once(&dg_topic_once, dg_topic_init);

    memset(acc->hits, 0, sizeof(acc->hits[0]) * DG_T_N);
    acc->ntouched = 0;
    acc->matched = 0;
    acc->content = 0;
    acc->minhash = UINT64_MAX;
}


int
dg_topic_lookup(uint64_t h, int stem)
{
    const dg_topic_slot_t  *slot;

    slot = dg_topic_find(h);

    if (slot == NULL || (stem && slot->kind != DG_SLOT_STEM)) {
        return 0;
    }

    return slot->domain;
}


size_t
dg_word_hash(const unsigned char *p, const unsigned char *end, dg_word_t *w)
{
    int                   d, in_digits;
    size_t                len;
    uint32_t              lens;
    unsigned              c, k;
    uint64_t              state, block, v;
    const unsigned char  *start;

    memset(w, 0, sizeof(dg_word_t));

    start = p;
    state = DG_WORD_SEED;
    block = 0;
    k = 0;
    len = 0;
    lens = 0;
    in_digits = 0;

    for ( ; p < end; p++) {
        c = *p;

        if (c >= '0' && c <= '9') {
            w->digits++;

            if (in_digits) {
                continue;
            }

            in_digits = 1;
            w->digit_runs++;
            c = '0';

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') {
            c |= 0x20;
            w->letters++;
            in_digits = 0;

        } else if (c == '_') {
            w->letters++;
            in_digits = 0;

        } else if (c >= 0x80) {
            w->leads += (c >= 0xc0);
            in_digits = 0;

        } else {
            break;
        }

        /*
         * the word so far is a proper prefix of it: a stem?  Only at the
         * lengths that stems starting with its first 4 bytes have (the
         * word scanner's filter), mostly none
         */
        if (len == DG_TOPIC_STEM_MIN) {
            lens = dg_topic_stem_lens(block);
        }

        if (len >= DG_TOPIC_STEM_MIN && len <= DG_TOPIC_STEM_MAX
            && (lens >> len) & 1)
        {
            v = dg_word_v(state, block, len);

            if (dg_topic_maybe(dg_word_key(v))
                && (d = dg_topic_lookup(dg_mix64(v), 1)) != 0)
            {
                w->stem = d;
            }
        }

        block |= (uint64_t) c << (8 * k);
        len++;

        if (++k == 8) {
            state = dg_mix64(state ^ block);
            block = 0;
            k = 0;
        }
    }

    w->v = dg_word_v(state, block, len);
    w->hash = dg_mix64(w->v);

    return p - start;
}


uint16_t
dg_topic_end(const dg_topic_acc_t *acc)
{
    unsigned  i, n, d, p, score, top, top_score;

    if (acc->matched) {
        top = DG_T_NONE;
        top_score = 0;
        n = (acc->ntouched <= DG_TOPIC_TOUCHED) ? acc->ntouched : DG_T_N;

        for (i = 0; i < n; i++) {
            d = (acc->ntouched <= DG_TOPIC_TOUCHED) ? acc->touched[i] : i;
            score = acc->hits[d];

            if (score == 0) {
                continue;
            }

            p = dg_topic_domains[d].parent;

            if (p != DG_T_NONE) {
                score += acc->hits[p];
            }

            /* the lowest id wins ties: deterministic */
            if (score > top_score || (score == top_score && d < top)) {
                top = d;
                top_score = score;
            }
        }

        return (uint16_t) top;
    }

    if (acc->content) {
        return (uint16_t) (DG_TOPIC_FALLBACK
                           + dg_mix64(acc->minhash)
                             % (4096 - DG_TOPIC_FALLBACK));
    }

    return 0;
}


const char *
dg_topic_name(uint16_t topic)
{
    if (topic < DG_T_N) {
        return dg_topic_domains[topic].name;
    }

    return "other";
}


unsigned
dg_topic_check(void)
{
    pthread_once(&dg_topic_once, dg_topic_init);

    return dg_topic_dups + dg_topic_bad;
}
